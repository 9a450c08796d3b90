// Webhook oracle: twilio-node 6.2's validators (HMAC-SHA1 only).
//
// Reads the same {"cases": [...]} as webhook_oracle.py on stdin and writes one
// result per case on stdout:
// - signature: getExpectedTwilioSignature(token, sign_url, params), repeated
//   names as arrays (the JSON form signs the URL alone);
// - valid: validateRequest(token, signature, url, params), or
//   validateRequestWithBody(token, signature, url, body) for JSON webhooks.
"use strict";

const webhooks = require("twilio/lib/webhooks/webhooks");

function paramsObject(pairs) {
  const out = {};
  for (const [name, value] of pairs) {
    if (Object.prototype.hasOwnProperty.call(out, name)) {
      out[name] = [].concat(out[name], value);
    } else {
      out[name] = value;
    }
  }
  return out;
}

function run(c) {
  const params = paramsObject(c.params);
  const json = c.body !== null && c.body !== undefined;
  const signed = webhooks.getExpectedTwilioSignature(c.token, c.sign_url, json ? {} : params);
  const signature = c.signature || signed;
  const valid = json
    ? webhooks.validateRequestWithBody(c.token, signature, c.url, c.body)
    : webhooks.validateRequest(c.token, signature, c.url, params);
  return { signature: signed, valid };
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const cases = JSON.parse(input).cases;
  process.stdout.write(JSON.stringify(cases.map(run)));
});
