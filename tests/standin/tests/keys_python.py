"""twilio-python 9.13's own Client against the twilio-standin's key and Auth
Token APIs: proves the stand-in speaks the wire format Twilio's library sends
and parses (v2010 Keys, IAM v1 Keys, accounts v1 secondary Auth Token and
promotion, the 20429 rate-limit error).

Reads JSON on stdin: base (the stand-in, "http://127.0.0.1:PORT"; every
twilio.com host is rewritten to it), account_sid, auth_token, main_sid,
main_secret. Writes JSON on stdout: what happened.
"""

import json
import sys
from urllib.parse import urlsplit, urlunsplit

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client


class StandinHttpClient(TwilioHttpClient):
    """twilio-python's own HTTP client, with the host rewritten to the stand-in."""

    def __init__(self, base):
        super().__init__()
        self._base = urlsplit(base)
        self.hosts = []

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False):
        parts = urlsplit(url)
        self.hosts.append(parts.netloc)
        url = urlunsplit((self._base.scheme, self._base.netloc, parts.path, parts.query, parts.fragment))
        return super().request(method, url, params=params, data=data, headers=headers, auth=auth,
                               timeout=timeout, allow_redirects=allow_redirects)


def main():
    spec = json.load(sys.stdin)
    http = StandinHttpClient(spec["base"])
    # A Main key, with the account in the path (WIRE.md section 6).
    main_key = Client(spec["main_sid"], spec["main_secret"], spec["account_sid"], http_client=http)
    out = {}

    key = main_key.new_keys.create(friendly_name="from python")
    out["v2010_created"] = {"sid": key.sid, "secret": key.secret, "friendly_name": key.friendly_name,
                            "has_date": key.date_created is not None}
    fetched = main_key.keys(key.sid).fetch()
    out["v2010_fetched"] = {"sid": fetched.sid, "has_date": fetched.date_created is not None}
    out["v2010_listed"] = sorted(k.sid for k in main_key.keys.list())
    out["v2010_deleted"] = main_key.keys(key.sid).delete()

    policy = {"allow": ["/twilio/messaging/messages/create"]}
    iam = main_key.iam.v1.new_api_key.create(account_sid=spec["account_sid"], friendly_name="narrow",
                                             key_type="restricted", policy=policy)
    out["iam_created"] = {"sid": iam.sid, "secret": iam.secret, "policy": iam.policy,
                          "has_date": iam.date_created is not None}
    out["iam_deleted"] = main_key.iam.v1.api_key(iam.sid).delete()

    # The account's Auth Token: secondary, then promotion.
    token = Client(spec["account_sid"], spec["auth_token"], http_client=http)
    secondary = token.accounts.v1.secondary_auth_token().create()
    out["secondary"] = {"account_sid": secondary.account_sid, "token": secondary.secondary_auth_token,
                        "has_date": secondary.date_created is not None, "url": secondary.url}
    promoted = token.accounts.v1.auth_token_promotion().update()
    out["promoted"] = {"account_sid": promoted.account_sid, "auth_token": promoted.auth_token,
                       "has_date": promoted.date_created is not None}
    try:
        Client(spec["account_sid"], spec["auth_token"], http_client=http).new_keys.create()
        out["old_primary"] = "accepted"
    except TwilioRestException as err:
        out["old_primary"] = {"status": err.status, "code": err.code}
    new = Client(spec["account_sid"], promoted.auth_token, http_client=http)
    again = new.accounts.v1.secondary_auth_token().create()
    out["secondary_deleted"] = new.accounts.v1.secondary_auth_token().delete()
    out["second_secondary"] = again.secondary_auth_token

    # A standard key may not manage keys.
    try:
        standard = Client(spec["standard_sid"], spec["standard_secret"], spec["account_sid"],
                          http_client=http)
        standard.new_keys.create()
        out["standard"] = "accepted"
    except TwilioRestException as err:
        out["standard"] = {"status": err.status, "code": err.code}

    # The rate limit the test set up for the next call.
    import urllib.request
    request = urllib.request.Request(spec["base"] + "/_standin/knobs", method="PUT",
                                     data=json.dumps({"rate_limited_requests": 1}).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()
    try:
        new.new_keys.create()
        out["rate_limited"] = "accepted"
    except TwilioRestException as err:
        out["rate_limited"] = {"status": err.status, "code": err.code}

    out["hosts"] = sorted(set(http.hosts))
    json.dump(out, sys.stdout)


main()
