// Access Token oracle: twilio-node 6.2 verifies and re-mints broker tokens.
//
// Reads {"cases": [...]} (the same cases as mint_oracle.py) as JSON on stdin
// and writes one result per case on stdout:
// - verified: jsonwebtoken.verify(broker_token, secret, HS256) succeeds
//   (the library twilio-node signs with; exp and nbf checked);
// - claims: the decoded payload twilio-node emits for the same inputs with
//   Date.now() fixed at `now` (its byte layout differs from PY by design).
"use strict";

const AccessToken = require("twilio/lib/jwt/AccessToken");
const jsonwebtoken = require("jsonwebtoken");

function grantsOf(spec) {
  const out = [];
  if (spec.voice) {
    const v = spec.voice;
    out.push(
      new AccessToken.VoiceGrant({
        incomingAllow: v.incoming_allow || undefined,
        outgoingApplicationSid: v.outgoing_application_sid || undefined,
        outgoingApplicationParams: v.params_json ? JSON.parse(v.params_json) : undefined,
        pushCredentialSid: v.push_credential_sid || undefined,
        endpointId: v.endpoint_id || undefined,
      }),
    );
  }
  if (spec.video) {
    out.push(new AccessToken.VideoGrant({ room: spec.video.room || undefined }));
  }
  if (spec.chat) {
    const c = spec.chat;
    out.push(
      new AccessToken.ChatGrant({
        serviceSid: c.service_sid || undefined,
        endpointId: c.endpoint_id || undefined,
        deploymentRoleSid: c.deployment_role_sid || undefined,
        pushCredentialSid: c.push_credential_sid || undefined,
      }),
    );
  }
  if (spec.sync) {
    out.push(
      new AccessToken.SyncGrant({
        serviceSid: spec.sync.service_sid || undefined,
        endpointId: spec.sync.endpoint_id || undefined,
      }),
    );
  }
  if (spec.task_router) {
    const t = spec.task_router;
    out.push(
      new AccessToken.TaskRouterGrant({
        workspaceSid: t.workspace_sid || undefined,
        workerSid: t.worker_sid || undefined,
        role: t.role || undefined,
      }),
    );
  }
  if (spec.playback_json != null) {
    out.push(new AccessToken.PlaybackGrant({ grant: JSON.parse(spec.playback_json) }));
  }
  return out;
}

function run(c) {
  const result = {};
  try {
    jsonwebtoken.verify(c.broker_token, c.secret, { algorithms: ["HS256"] });
    result.verified = true;
  } catch (err) {
    result.verified = false;
    result.error = String(err);
  }
  const token = new AccessToken(c.account_sid, c.key_sid, c.secret, {
    identity: c.identity,
    ttl: c.ttl,
    nbf: c.nbf,
    region: c.region || undefined,
  });
  for (const grant of grantsOf(c.grants)) {
    token.addGrant(grant);
  }
  const realNow = Date.now;
  Date.now = () => c.now * 1000 + 250;
  let jwt;
  try {
    jwt = token.toJwt();
  } finally {
    Date.now = realNow;
  }
  result.claims = jsonwebtoken.decode(jwt);
  return result;
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const cases = JSON.parse(input).cases;
  process.stdout.write(JSON.stringify(cases.map(run)));
});
