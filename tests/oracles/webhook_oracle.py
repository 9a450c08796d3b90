"""Webhook oracle: twilio-python 9.13's RequestValidator signs and validates.

Reads {"cases": [...]} as JSON on stdin, writes one result per case on stdout.
Case fields: token (Auth Token or SharedKey secret), algorithm (HMAC_SHA1 or
HMAC_SHA256), sign_url (the URL form Twilio signed), url (the URL the
receiver saw), params ([[name, value], ...], repeated names allowed), body
(raw JSON text or null), signature (to validate; null means "the one
computed here").

Result: signature (compute_signature over sign_url; the JSON form signs the
URL alone) and valid (RequestValidator.validate(url, params or body,
signature, algorithm)).
"""

import json
import sys

from twilio.request_validator import RequestValidator


class MultiDict(dict):
    """name -> [values], with the getall() twilio-python looks for (Flask's API)."""

    def getall(self, name):
        return self[name]


def run(case):
    validator = RequestValidator(case["token"])
    algorithm = case["algorithm"]
    params = MultiDict()
    for name, value in case["params"]:
        params.setdefault(name, []).append(value)
    body = case["body"]
    signed = validator.compute_signature(
        case["sign_url"], {} if body is not None else params, algorithm
    )
    signature = case["signature"] or signed
    valid = validator.validate(
        case["url"], body if body is not None else params, signature, algorithm
    )
    return {"signature": signed, "valid": bool(valid)}


def main():
    cases = json.load(sys.stdin)["cases"]
    json.dump([run(case) for case in cases], sys.stdout)


if __name__ == "__main__":
    main()
