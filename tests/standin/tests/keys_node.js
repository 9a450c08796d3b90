'use strict';
// twilio-node 6.2's own client against the twilio-standin's key and Auth
// Token APIs: the same calls and checks as keys_python.py (v2010 Keys, IAM v1
// Keys, accounts v1 secondary Auth Token and promotion, 20003 and 20429).
//
// Reads JSON on stdin (the spec of keys_python.py); writes JSON on stdout.
// Needs NODE_PATH to hold tests/oracles/node_modules.

const twilio = require('twilio');

/** twilio-node's own RequestClient, with the host rewritten to the stand-in. */
class StandinHttpClient {
  constructor(base) {
    this.base = new URL(base);
    this.inner = new twilio.RequestClient();
    this.hosts = [];
  }

  request(opts) {
    const uri = new URL(opts.uri);
    this.hosts.push(uri.host);
    uri.protocol = this.base.protocol;
    uri.host = this.base.host;
    return this.inner.request({ ...opts, uri: uri.href });
  }
}

async function refused(call) {
  try {
    await call();
    return 'accepted';
  } catch (err) {
    return { status: err.status, code: err.code };
  }
}

async function main() {
  const spec = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const http = new StandinHttpClient(spec.base);
  const out = {};
  const mainKey = twilio(spec.main_sid, spec.main_secret, { accountSid: spec.account_sid, httpClient: http });

  const key = await mainKey.newKeys.create({ friendlyName: 'from node' });
  out.v2010_created = { sid: key.sid, secret: key.secret, friendly_name: key.friendlyName,
    has_date: key.dateCreated instanceof Date && !isNaN(key.dateCreated) };
  const fetched = await mainKey.keys(key.sid).fetch();
  out.v2010_fetched = { sid: fetched.sid, has_date: fetched.dateCreated instanceof Date && !isNaN(fetched.dateCreated) };
  out.v2010_listed = (await mainKey.keys.list()).map((k) => k.sid).sort();
  out.v2010_deleted = await mainKey.keys(key.sid).remove();

  const policy = { allow: ['/twilio/messaging/messages/create'] };
  const iam = await mainKey.iam.v1.newApiKey.create({ accountSid: spec.account_sid, friendlyName: 'narrow',
    keyType: 'restricted', policy });
  out.iam_created = { sid: iam.sid, secret: iam.secret, policy: iam.policy,
    has_date: iam.dateCreated instanceof Date && !isNaN(iam.dateCreated) };
  out.iam_deleted = await mainKey.iam.v1.apiKey(iam.sid).remove();

  const token = twilio(spec.account_sid, spec.auth_token, { httpClient: http });
  const secondary = await token.accounts.v1.secondaryAuthToken().create();
  out.secondary = { account_sid: secondary.accountSid, token: secondary.secondaryAuthToken,
    has_date: secondary.dateCreated instanceof Date && !isNaN(secondary.dateCreated), url: secondary.url };
  const promoted = await token.accounts.v1.authTokenPromotion().update();
  out.promoted = { account_sid: promoted.accountSid, auth_token: promoted.authToken,
    has_date: promoted.dateCreated instanceof Date && !isNaN(promoted.dateCreated) };
  out.old_primary = await refused(() => twilio(spec.account_sid, spec.auth_token, { httpClient: http }).newKeys.create());
  const fresh = twilio(spec.account_sid, promoted.authToken, { httpClient: http });
  const again = await fresh.accounts.v1.secondaryAuthToken().create();
  out.secondary_deleted = await fresh.accounts.v1.secondaryAuthToken().remove();
  out.second_secondary = again.secondaryAuthToken;

  const standard = twilio(spec.standard_sid, spec.standard_secret, { accountSid: spec.account_sid, httpClient: http });
  out.standard = await refused(() => standard.newKeys.create());

  await fetch(`${spec.base}/_standin/knobs`, { method: 'PUT', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ rate_limited_requests: 1 }) });
  out.rate_limited = await refused(() => fresh.newKeys.create());

  out.hosts = [...new Set(http.hosts)].sort();
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
