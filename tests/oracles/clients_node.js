'use strict';
// Node client driver: twilio-node 6.2's real client with the broker's
// BrokerCredentialProvider sends SMS to the twilio-standin, and grpc-js calls
// the broker directly through BrokerClient.
//
// Reads JSON on stdin (the same spec as clients_python.py):
//   broker, credential, account_sid, api_base, messages,
//   mint: {credential, identity, room, secret}
// Writes JSON on stdout: what happened (see main). Needs NODE_PATH to hold
// tests/oracles/node_modules; the client is required by path (client/node, or
// TWILIO_BROKER_NODE_CLIENT).

const path = require('path');
const twilio = require('twilio');
const jwt = require('jsonwebtoken');

const clientDir = process.env.TWILIO_BROKER_NODE_CLIENT || path.join(__dirname, '../../client/node');
const { BrokerClient, BrokerCredentialProvider } = require(clientDir);

/** twilio-node's own RequestClient, with the host rewritten to the stand-in. */
class StandinHttpClient {
  constructor(base) {
    this.base = new URL(base);
    this.inner = new twilio.RequestClient();
    this.hosts = [];
    this.authorizations = [];
    // The header exactly as sent, after RequestClient asked the auth strategy.
    this.inner.axios.interceptors.request.use((config) => {
      this.authorizations.push(String(config.headers.Authorization || ''));
      return config;
    });
  }

  request(opts) {
    const uri = new URL(opts.uri);
    this.hosts.push(uri.host);
    uri.protocol = this.base.protocol;
    uri.host = this.base.host;
    return this.inner.request({ ...opts, uri: uri.href });
  }
}

async function sendSms(spec) {
  const http = new StandinHttpClient(spec.api_base);
  const client = twilio(undefined, undefined, { httpClient: http });
  const provider = new BrokerCredentialProvider(spec.broker, spec.credential);
  client.setCredentialProvider(provider);
  client.setAccountSid(spec.account_sid);
  const messages = [];
  for (let i = 0; i < spec.messages; i += 1) {
    const m = await client.messages.create({ to: '+15005550006', from: '+15005550001', body: `hello broker ${i}` });
    messages.push({ sid: m.sid, status: m.status, to: m.to, from: m.from, body: m.body, account_sid: m.accountSid });
  }
  // A burst of concurrent requests still makes no new broker call.
  await Promise.all([0, 1, 2].map(() => provider.toAuthStrategy().getAuthString()));
  const out = {
    messages,
    broker_calls: provider.brokerCalls,
    hosts: [...new Set(http.hosts)].sort(),
    schemes: [...new Set(http.authorizations.map((a) => a.split(' ')[0]))].sort(),
    distinct_bearers: new Set(http.authorizations).size,
  };
  provider.client.close();
  return out;
}

async function grpcJsCalls(spec) {
  const broker = new BrokerClient(spec.broker);
  try {
    const names = (await broker.listCredentials()).map((c) => c.name).sort();
    const kind = (await broker.getCredential(spec.credential)).kind;
    let notFound = null;
    try {
      await broker.getCredential('no-such-credential');
    } catch (err) {
      notFound = err;
    }
    // A cold herd: one broker call between them.
    const herd = await Promise.all([0, 1, 2, 3].map(() => broker.bearer(spec.credential)));
    const { mint } = spec;
    const reply = await broker.mintAccessToken({
      credential: mint.credential, identity: mint.identity, ttl_seconds: 600, video: { room: mint.room },
    });
    const claims = jwt.verify(reply.token, mint.secret, { algorithms: ['HS256'] });
    return {
      credentials: names,
      oauth_kind: kind,
      not_found: notFound && notFound.code,
      not_found_reason: notFound && notFound.reason,
      not_found_metadata: notFound && notFound.metadata,
      minted: {
        jti: reply.jti, claim_jti: claims.jti, identity: claims.grants.identity, room: claims.grants.video.room,
        exp: claims.exp, expires_at: Number(reply.expires_at.seconds), ttl_left: claims.exp - Math.floor(Date.now() / 1000),
      },
      bearer_account_sid: herd[0].accountSid,
      herd_same: herd.every((b) => b.accessToken === herd[0].accessToken),
      bearer_fetches: broker.bearerFetches,
    };
  } finally {
    broker.close();
  }
}

/** Issue 14: plaintext only to loopback unless http:// is written out. */
function plaintextChecks() {
  let refused = null;
  try {
    new BrokerClient('192.0.2.1:50051').close();
  } catch (err) {
    refused = err.message;
  }
  const warnings = [];
  const onWarning = (w) => warnings.push(w.name);
  process.on('warning', onWarning);
  new BrokerClient('http://192.0.2.1:50051').close();
  new BrokerClient('127.0.0.1:1').close();
  return new Promise((resolve) => {
    setImmediate(() => {
      process.off('warning', onWarning);
      resolve({ refused, warnings });
    });
  });
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const spec = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const out = { sms: await sendSms(spec), grpc_js: await grpcJsCalls(spec), plaintext: await plaintextChecks() };
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
