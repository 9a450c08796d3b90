"""A stock grpcio stub, as a service would write it from the generated code:
`grpc.insecure_channel("unix:/path")` with no options, so grpcio sends the
socket path as `:authority`. Uses only the stubs from the installed
twilio-broker package.

Reads JSON on stdin: {"socket": "/path/broker.sock", "credential": "prod-oauth"}.
Writes JSON: the bearer's account SID and the status of an Admin call.
"""

import json
import sys

import grpc

from twilio_broker.v1 import admin_pb2, admin_pb2_grpc, broker_pb2, broker_pb2_grpc


def main():
    spec = json.load(sys.stdin)
    with grpc.insecure_channel("unix:" + spec["socket"]) as channel:
        broker = broker_pb2_grpc.BrokerStub(channel)
        reply = broker.GetBearer(broker_pb2.GetBearerRequest(credential=spec["credential"]), timeout=10)
        admin = admin_pb2_grpc.AdminStub(channel)
        try:
            admin.ListCredentials(admin_pb2.ListCredentialsRequest(), timeout=10)
            admin_status = "OK"
        except grpc.RpcError as err:
            admin_status = err.code().name
    json.dump({"account_sid": reply.account_sid, "token_type": reply.token_type,
               "has_token": bool(reply.access_token), "admin": admin_status}, sys.stdout)


if __name__ == "__main__":
    main()
