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


class _CachedBearerStrategy(AuthStrategy):
    """Answers from the async client's cache only: never does I/O."""

    def __init__(self, client, credential: str):
        super().__init__(AuthType.CLIENT_CREDENTIALS)
        self._client = client
        self._credential = credential

    def get_auth_string(self) -> str:
        bearer = self._client.cached_bearer(self._credential)
        if bearer is None:
            raise RuntimeError(
                "AsyncBrokerCredentialProvider has no fresh bearer: `await provider.start()` "
                "inside the event loop before the first request")
        return "Bearer " + bearer.access_token

    def requires_authentication(self) -> bool:
        return True


class AsyncBrokerCredentialProvider(CredentialProvider):
    """For twilio-python's async client (`AsyncTwilioHttpClient`), which asks
    its provider synchronously on the event loop: this provider never blocks.

    `await provider.start()` fetches the first bearer over `grpc.aio` and keeps
    a task that replaces it `safety_margin` seconds before it expires;
    `get_auth_string()` only reads that cache. `await provider.close()` stops it.
    """

    def __init__(self, address: str, credential: str, credentials: Optional[grpc.ChannelCredentials] = None,
                 safety_margin: float = 60.0, client=None):
        super().__init__(AuthType.CLIENT_CREDENTIALS)
        from twilio_broker.aio import AsyncBrokerClient

        self.client = client or AsyncBrokerClient(address, credentials, safety_margin=safety_margin)
        self._credential = credential
        self._strategy = _CachedBearerStrategy(self.client, credential)
        self._task = None

    @property
    def broker_calls(self) -> int:
        """How many times this provider asked the broker for a token."""
        return self.client.bearer_fetches

    async def start(self) -> None:
        """Fetches the first bearer and starts the refresh task."""
        import asyncio

        await self.client.bearer(self._credential)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        import asyncio

        while True:
            await asyncio.sleep(self.client.refresh_in(self._credential))
            try:
                await self.client.bearer(self._credential)
            except Exception:  # the broker is down: retry soon, the old token may still work
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        """Stops the refresh task and closes the channel."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self.client.close()

    def to_auth_strategy(self) -> AuthStrategy:
        return self._strategy
