"""Python client for twilio-broker.

`BrokerClient` wraps the generated gRPC stubs (`twilio_broker.v1`);
`BrokerCredentialProvider` plugs the broker into twilio-python:

    from twilio.rest import Client
    from twilio_broker import BrokerCredentialProvider

    client = Client(account_sid="AC...",
                    credential_provider=BrokerCredentialProvider("unix:/run/twilio-broker/broker.sock", "prod-oauth"))
"""

from twilio_broker.client import BrokerClient, BrokerError, Bearer
from twilio_broker.provider import BrokerCredentialProvider

__all__ = ["BrokerClient", "BrokerError", "Bearer", "BrokerCredentialProvider"]
