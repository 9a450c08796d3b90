"""Python client driver: twilio-python 9.13's real Client with the broker's
BrokerCredentialProvider sends SMS to the twilio-standin, and grpcio calls the
broker directly through twilio_broker.BrokerClient and (grpc.aio)
twilio_broker.AsyncBrokerClient.

Reads JSON on stdin:
  broker       "127.0.0.1:PORT" (or unix:/path)
  credential   the oauth_client credential's name
  account_sid  the account the bearer works for
  api_base     the stand-in, e.g. "http://127.0.0.1:PORT" (api.twilio.com is rewritten to it)
  messages     how many SMS to send
  mint         {credential, identity, room, secret}: an api_key to mint a Video token with
                and its secret, to check the token's signature
Writes JSON on stdout: what happened (see `main`). Needs client/python on PYTHONPATH.
"""

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import jwt
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from twilio_broker import AsyncBrokerClient, BrokerClient, BrokerCredentialProvider, BrokerError
from twilio_broker.v1 import broker_pb2, credential_pb2


class StandinHttpClient(TwilioHttpClient):
    """twilio-python's own HTTP client, with the host rewritten to the stand-in."""

    def __init__(self, base: str):
        super().__init__()
        self._base = urlsplit(base)
        self.hosts = []           # the hosts twilio-python asked for
        self.authorizations = []  # the Authorization headers it sent

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False):
        parts = urlsplit(url)
        self.hosts.append(parts.netloc)
        self.authorizations.append((headers or {}).get("Authorization", ""))
        url = urlunsplit((self._base.scheme, self._base.netloc, parts.path, parts.query, parts.fragment))
        return super().request(method, url, params=params, data=data, headers=headers, auth=auth,
                               timeout=timeout, allow_redirects=allow_redirects)


def send_sms(spec):
    provider = BrokerCredentialProvider(spec["broker"], spec["credential"])
    http = StandinHttpClient(spec["api_base"])
    client = Client(account_sid=spec["account_sid"], credential_provider=provider, http_client=http)
    messages = []
    for i in range(spec["messages"]):
        message = client.messages.create(to="+15005550006", from_="+15005550001", body=f"hello broker {i}")
        messages.append({"sid": message.sid, "status": message.status, "to": message.to,
                         "from": message.from_, "body": message.body, "account_sid": message.account_sid})
    schemes = sorted({a.split(" ", 1)[0] for a in http.authorizations})
    return {
        "messages": messages,
        "broker_calls": provider.broker_calls,
        "hosts": sorted(set(http.hosts)),
        "schemes": schemes,
        "distinct_bearers": len(set(http.authorizations)),
    }


def grpcio_calls(spec):
    mint = spec["mint"]
    with BrokerClient(spec["broker"]) as broker:
        names = [c.name for c in broker.list_credentials()]
        kind = credential_pb2.CredentialKind.Name(broker.get_credential(spec["credential"]).kind)
        try:
            broker.get_credential("no-such-credential")
            not_found = None
        except BrokerError as err:
            not_found = err
        reply = broker.mint_access_token(broker_pb2.MintAccessTokenRequest(
            credential=mint["credential"], identity=mint["identity"], ttl_seconds=600,
            video=broker_pb2.VideoGrant(room=mint["room"])))
        claims = jwt.decode(reply.token, mint["secret"], algorithms=["HS256"])
        bearer = broker.bearer(spec["credential"])
        again = broker.bearer(spec["credential"])
        return {
            "credentials": sorted(names),
            "oauth_kind": kind,
            "not_found": not_found and not_found.code,
            "not_found_reason": not_found and not_found.reason,
            "not_found_metadata": not_found and not_found.metadata,
            "minted": {"jti": reply.jti, "claim_jti": claims["jti"], "identity": claims["grants"]["identity"],
                       "room": claims["grants"]["video"]["room"], "exp": claims["exp"],
                       "expires_at": reply.expires_at.seconds, "ttl_left": claims["exp"] - int(time.time())},
            "bearer_account_sid": bearer.account_sid,
            "bearer_repr_redacted": bearer.access_token not in repr(bearer),
            "cached_bearer_same": again.access_token == bearer.access_token,
            "bearer_fetches": broker.bearer_fetches,
        }


async def aio_calls(spec):
    async with AsyncBrokerClient(spec["broker"]) as broker:
        names = sorted(c.name for c in await broker.list_credentials())
        try:
            await broker.get_credential("no-such-credential")
            not_found = None
        except BrokerError as err:
            not_found = err
        # A cold herd of tasks: one broker call between them.
        herd = await asyncio.gather(*(broker.bearer(spec["credential"]) for _ in range(10)))
        return {
            "credentials": names,
            "not_found": not_found and not_found.code,
            "not_found_reason": not_found and not_found.reason,
            "not_found_metadata": not_found and not_found.metadata,
            "herd_same": all(b.access_token == herd[0].access_token for b in herd),
            "bearer_account_sid": herd[0].account_sid,
            "bearer_fetches": broker.bearer_fetches,
        }


def plaintext_checks():
    """Issue 14: plaintext only to loopback unless http:// is written out."""
    import warnings
    try:
        BrokerClient("192.0.2.1:50051").close()
        refused = None
    except ValueError as err:
        refused = str(err)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        BrokerClient("http://192.0.2.1:50051").close()
        BrokerClient("127.0.0.1:1").close()
    return {"refused": refused, "warnings": [str(w.message) for w in caught]}


def main():
    spec = json.load(sys.stdin)
    out = {"sms": send_sms(spec), "grpcio": grpcio_calls(spec), "aio": asyncio.run(aio_calls(spec)),
           "plaintext": plaintext_checks()}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
