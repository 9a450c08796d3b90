"""Python client for twilio-broker.

`BrokerClient` wraps the generated gRPC stubs (`twilio_broker.v1`);
`BrokerCredentialProvider` plugs the broker into twilio-python:

    from twilio.rest import Client
    from twilio_broker import BrokerCredentialProvider

    client = Client(account_sid="AC...",
                    credential_provider=BrokerCredentialProvider("unix:/run/twilio-broker/broker.sock", "prod-oauth"))

asyncio code uses `AsyncBrokerClient` (grpc.aio) and, with twilio-python's
`AsyncTwilioHttpClient`, `AsyncBrokerCredentialProvider` (never blocks the loop).
"""

from twilio_broker.client import BrokerClient, BrokerError, Bearer

__all__ = ["BrokerClient", "BrokerError", "Bearer", "BrokerCredentialProvider",
           "AsyncBrokerClient", "AsyncBrokerCredentialProvider"]


def __getattr__(name: str):
    # The providers need twilio-python (the `twilio` extra); the clients do not.
    if name in ("BrokerCredentialProvider", "AsyncBrokerCredentialProvider"):
        from twilio_broker import provider

        return getattr(provider, name)
    if name == "AsyncBrokerClient":
        from twilio_broker.aio import AsyncBrokerClient

        return AsyncBrokerClient
    raise AttributeError(f"module 'twilio_broker' has no attribute {name!r}")
