"""twilio-python's in-process Access Token rate, for the mint benchmark.

Usage: python mint_bench.py N. Builds N tokens the way a backend does per
request (AccessToken + VoiceGrant + VideoGrant, to_jwt()) on one thread and
prints {"library", "n", "seconds", "tokens_per_second", "p50_us"} as JSON.
"""

import json
import sys
import time

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant, VoiceGrant

ACCOUNT = "AC0123456789abcdef0123456789abcdef"
KEY = "SKfedcba9876543210fedcba9876543210"
SECRET = "benchsecret0123456789abcdefABCDEF"
APP = "AP00112233445566778899aabbccddeeff"


def one():
    token = AccessToken(ACCOUNT, KEY, SECRET, identity="user-123", ttl=3600)
    token.add_grant(VoiceGrant(incoming_allow=True, outgoing_application_sid=APP))
    token.add_grant(VideoGrant(room="room-1"))
    return token.to_jwt()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    for _ in range(min(n, 1000)):
        one()
    samples = []
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        one()
        samples.append(time.perf_counter() - t)
    seconds = time.perf_counter() - start
    samples.sort()
    print(json.dumps({
        "library": "twilio-python",
        "n": n,
        "seconds": seconds,
        "tokens_per_second": n / seconds,
        "p50_us": samples[len(samples) // 2] * 1e6,
        "token_bytes": len(one()),
    }))


if __name__ == "__main__":
    main()
