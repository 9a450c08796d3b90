"""A credential provider for twilio-python (9.4.1 and later).

twilio-python asks its provider for an auth strategy on every request and
sends `get_auth_string()` as the Authorization header. This provider returns
"Bearer <token>" from the broker, cached until shortly before the token's
expiry (twilio-python's own OAuth provider refreshes only after expiry).
"""

from typing import Optional

import grpc
from twilio.auth_strategy.auth_strategy import AuthStrategy
from twilio.auth_strategy.auth_type import AuthType
from twilio.credential.credential_provider import CredentialProvider

from twilio_broker.client import BrokerClient


class _BrokerBearerStrategy(AuthStrategy):
    def __init__(self, client: BrokerClient, credential: str):
        super().__init__(AuthType.CLIENT_CREDENTIALS)
        self._client = client
        self._credential = credential

    def get_auth_string(self) -> str:
        return "Bearer " + self._client.bearer(self._credential).access_token

    def requires_authentication(self) -> bool:
        return True


class BrokerCredentialProvider(CredentialProvider):
    """`Client(account_sid=..., credential_provider=BrokerCredentialProvider(addr, "prod-oauth"))`."""

    def __init__(self, address: str, credential: str, credentials: Optional[grpc.ChannelCredentials] = None,
                 safety_margin: float = 60.0, client: Optional[BrokerClient] = None):
        super().__init__(AuthType.CLIENT_CREDENTIALS)
        self.client = client or BrokerClient(address, credentials, safety_margin=safety_margin)
        self._strategy = _BrokerBearerStrategy(self.client, credential)

    @property
    def broker_calls(self) -> int:
        """How many times this provider asked the broker for a token."""
        return self.client.bearer_fetches

    def to_auth_strategy(self) -> AuthStrategy:
        return self._strategy
