// twilio-node's in-process Access Token rate, for the mint benchmark.
//
// Usage: node mint_bench.js N. Builds N tokens the way a backend does per
// request (AccessToken + VoiceGrant + VideoGrant, toJwt()) and prints
// {"library", "n", "seconds", "tokens_per_second", "p50_us"} as JSON.
"use strict";

const AccessToken = require("twilio/lib/jwt/AccessToken");

const ACCOUNT = "AC0123456789abcdef0123456789abcdef";
const KEY = "SKfedcba9876543210fedcba9876543210";
const SECRET = "benchsecret0123456789abcdefABCDEF";
const APP = "AP00112233445566778899aabbccddeeff";

function one() {
  const token = new AccessToken(ACCOUNT, KEY, SECRET, { identity: "user-123", ttl: 3600 });
  token.addGrant(new AccessToken.VoiceGrant({ incomingAllow: true, outgoingApplicationSid: APP }));
  token.addGrant(new AccessToken.VideoGrant({ room: "room-1" }));
  return token.toJwt();
}

const n = Number(process.argv[2] || 20000);
for (let i = 0; i < Math.min(n, 1000); i++) one();
const samples = new Array(n);
const start = process.hrtime.bigint();
for (let i = 0; i < n; i++) {
  const t = process.hrtime.bigint();
  one();
  samples[i] = Number(process.hrtime.bigint() - t) / 1000;
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
samples.sort((a, b) => a - b);
process.stdout.write(
  JSON.stringify({
    library: "twilio-node",
    n,
    seconds,
    tokens_per_second: n / seconds,
    p50_us: samples[Math.floor(n / 2)],
    token_bytes: one().length,
  }) + "\n",
);
