"""Access Token oracle: twilio-python 9.13 checks and re-mints broker tokens.

Reads {"cases": [...]} as JSON on stdin and writes one JSON result per case
(a list) on stdout. Each case holds the inputs the broker was given, the
broker's token and the issue time the broker used (`now`). For each case:

- `accepted`: AccessToken.from_jwt(broker_token, secret) succeeds
  (signature, exp and nbf checked by PyJWT);
- `header_json`, `payload_json`: the exact JSON bytes twilio-python emits for
  the same inputs with time.time() fixed at `now`.

Case fields: account_sid, key_sid, secret, identity, ttl (effective seconds),
nbf, region, now, broker_token, grants: {voice, video, chat, sync,
task_router: objects of the proto's field names or null; playback_json: text
or null}.
"""

import base64
import json
import sys
import time

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import (
    ChatGrant,
    PlaybackGrant,
    SyncGrant,
    TaskRouterGrant,
    VideoGrant,
    VoiceGrant,
)


def segment(token, index):
    part = token.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8")


def grants_of(spec):
    out = []
    voice = spec.get("voice")
    if voice is not None:
        params = voice.get("params_json")
        out.append(
            VoiceGrant(
                incoming_allow=True if voice.get("incoming_allow") else None,
                outgoing_application_sid=voice.get("outgoing_application_sid") or None,
                outgoing_application_params=json.loads(params) if params else None,
                push_credential_sid=voice.get("push_credential_sid") or None,
                endpoint_id=voice.get("endpoint_id") or None,
            )
        )
    video = spec.get("video")
    if video is not None:
        out.append(VideoGrant(room=video.get("room") or None))
    chat = spec.get("chat")
    if chat is not None:
        out.append(
            ChatGrant(
                service_sid=chat.get("service_sid") or None,
                endpoint_id=chat.get("endpoint_id") or None,
                deployment_role_sid=chat.get("deployment_role_sid") or None,
                push_credential_sid=chat.get("push_credential_sid") or None,
            )
        )
    sync = spec.get("sync")
    if sync is not None:
        out.append(
            SyncGrant(
                service_sid=sync.get("service_sid") or None,
                endpoint_id=sync.get("endpoint_id") or None,
            )
        )
    task_router = spec.get("task_router")
    if task_router is not None:
        out.append(
            TaskRouterGrant(
                workspace_sid=task_router.get("workspace_sid") or None,
                worker_sid=task_router.get("worker_sid") or None,
                role=task_router.get("role") or None,
            )
        )
    playback = spec.get("playback_json")
    if playback is not None:
        out.append(PlaybackGrant(grant=json.loads(playback)))
    return out


def run(case):
    result = {}
    try:
        AccessToken.from_jwt(case["broker_token"], key=case["secret"])
        result["accepted"] = True
    except Exception as err:  # report, the Rust side fails the test
        result["accepted"] = False
        result["error"] = str(err)

    token = AccessToken(
        case["account_sid"],
        case["key_sid"],
        case["secret"],
        grants=grants_of(case["grants"]),
        identity=case["identity"],
        ttl=case["ttl"],
        nbf=case["nbf"],
        region=case["region"] or None,
    )
    real_time = time.time
    time.time = lambda: case["now"] + 0.25
    try:
        jwt = token.to_jwt()
    finally:
        time.time = real_time
    result["header_json"] = segment(jwt, 0)
    result["payload_json"] = segment(jwt, 1)
    return result


def main():
    cases = json.load(sys.stdin)["cases"]
    json.dump([run(case) for case in cases], sys.stdout)


if __name__ == "__main__":
    main()
