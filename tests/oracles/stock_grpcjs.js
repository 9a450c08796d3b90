'use strict';
// A stock grpc-js stub, as a service would write it from the .proto files:
// `new Broker('unix:/path', createInsecure())` with no options. Loads the
// .proto files shipped in the installed twilio-broker package.
//
// Reads JSON on stdin: {"socket": "/path/broker.sock", "credential": "prod-oauth"}.
// Writes JSON: the bearer's account SID and the status of an Admin call.

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const spec = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const protoRoot = path.join(path.dirname(require.resolve('twilio-broker')), 'proto');
  const definition = protoLoader.loadSync(
    ['twilio/broker/v1/broker.proto', 'twilio/broker/v1/admin.proto'],
    { includeDirs: [protoRoot], keepCase: true },
  );
  const { v1 } = grpc.loadPackageDefinition(definition).twilio.broker;
  const target = `unix:${spec.socket}`;
  const call = (stub, method, request) => new Promise((resolve, reject) => {
    stub[method](request, { deadline: Date.now() + 10000 }, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
  const broker = new v1.Broker(target, grpc.credentials.createInsecure());
  const admin = new v1.Admin(target, grpc.credentials.createInsecure());
  const reply = await call(broker, 'GetBearer', { credential: spec.credential });
  let adminStatus = 'OK';
  try {
    await call(admin, 'ListCredentials', {});
  } catch (err) {
    adminStatus = Object.keys(grpc.status).find((k) => grpc.status[k] === err.code);
  }
  broker.close();
  admin.close();
  process.stdout.write(JSON.stringify({
    account_sid: reply.account_sid, has_token: reply.access_token.length > 0, admin: adminStatus,
  }));
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
