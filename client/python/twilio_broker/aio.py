"""An asyncio client for twilio-broker over `grpc.aio`.

`AsyncBrokerClient` mirrors `BrokerClient` with coroutines; its bearer cache
is single-flight per credential (one broker call however many tasks ask).
"""

import asyncio
import time
from typing import Dict, List, Optional, Tuple

import grpc
import grpc.aio

from twilio_broker.client import MIN_TTL_UNREACHABLE, Bearer, BrokerError, _check_plaintext, _options, _seconds, _target
from twilio_broker.v1 import admin_pb2, admin_pb2_grpc, broker_pb2, broker_pb2_grpc, credential_pb2


def _aio_channel(address: str, credentials: Optional[grpc.ChannelCredentials]) -> grpc.aio.Channel:
    target, tls = _target(address)
    if credentials is None and tls:
        credentials = grpc.ssl_channel_credentials()
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials, options=_options(target))
    _check_plaintext(address, target)
    return grpc.aio.insecure_channel(target, options=_options(target))


class AsyncBrokerClient:
    """Calls a twilio-broker from asyncio code. Create it inside the running
    event loop and share it; `await client.close()` at the end.

    `address`: `host:port`, `http(s)://host:port` or `unix:/path`.
    """

    def __init__(self, address: str, credentials: Optional[grpc.ChannelCredentials] = None,
                 safety_margin: float = 60.0, timeout: float = 10.0):
        self._channel = _aio_channel(address, credentials)
        self._broker = broker_pb2_grpc.BrokerStub(self._channel)
        self._admin = admin_pb2_grpc.AdminStub(self._channel)
        self._timeout = timeout
        self._margin = safety_margin
        self._fetch_locks: Dict[str, asyncio.Lock] = {}
        self._cache: Dict[str, Tuple[Bearer, float]] = {}  # credential -> (bearer, margin)
        self.bearer_fetches = 0

    async def _call(self, method, request):
        try:
            return await method(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            raise BrokerError.from_rpc_error(err) from None

    async def get_bearer(self, credential: str, min_ttl_seconds: int = 0) -> Bearer:
        """GetBearer, uncached."""
        reply = await self._call(self._broker.GetBearer,
                                 broker_pb2.GetBearerRequest(credential=credential,
                                                             min_ttl_seconds=min_ttl_seconds))
        return Bearer(reply.access_token, _seconds(reply.expires_at), reply.account_sid)

    def cached_bearer(self, credential: str) -> Optional[Bearer]:
        """The cached bearer if it is still good (more than its margin left); no I/O."""
        cached = self._cache.get(credential)
        if cached is not None and cached[0].expires_at - time.time() > cached[1]:
            return cached[0]
        return None

    async def _fetch(self, credential: str) -> Tuple[Bearer, float]:
        received = time.time()
        self.bearer_fetches += 1
        try:
            return await self.get_bearer(credential, min_ttl_seconds=int(self._margin * 2)), self._margin
        except BrokerError as err:
            # Tokens shorter than twice the margin: take what the broker has.
            if err.reason != MIN_TTL_UNREACHABLE:
                raise
        self.bearer_fetches += 1
        bearer = await self.get_bearer(credential, min_ttl_seconds=0)
        return bearer, min(self._margin, (bearer.expires_at - received) / 2)

    async def bearer(self, credential: str) -> Bearer:
        """A bearer token, cached until `safety_margin` seconds before it expires."""
        cached = self.cached_bearer(credential)
        if cached is not None:
            return cached
        lock = self._fetch_locks.setdefault(credential, asyncio.Lock())
        async with lock:
            cached = self.cached_bearer(credential)
            if cached is not None:
                return cached
            fresh, margin = await self._fetch(credential)
            self._cache[credential] = (fresh, margin)
            return fresh

    def refresh_in(self, credential: str) -> float:
        """Seconds until the cached bearer needs replacing (0 when there is none)."""
        cached = self._cache.get(credential)
        if cached is None:
            return 0.0
        return max(0.0, cached[0].expires_at - time.time() - cached[1])

    def forget(self, credential: str) -> None:
        """Drops a cached bearer (e.g. after Twilio answered 401)."""
        self._cache.pop(credential, None)

    async def mint_access_token(self, request: broker_pb2.MintAccessTokenRequest) -> broker_pb2.MintAccessTokenResponse:
        """MintAccessToken."""
        return await self._call(self._broker.MintAccessToken, request)

    async def validate_webhook(self, request: broker_pb2.ValidateWebhookRequest) -> broker_pb2.ValidateWebhookResponse:
        """ValidateWebhook."""
        return await self._call(self._broker.ValidateWebhook, request)

    async def recommend(self, request: broker_pb2.RecommendRequest) -> broker_pb2.RecommendResponse:
        """Recommend."""
        return await self._call(self._broker.Recommend, request)

    async def put_credential(self, request: admin_pb2.PutCredentialRequest) -> credential_pb2.CredentialMetadata:
        """Admin/PutCredential; drops any cached bearer of that name."""
        reply = await self._call(self._admin.PutCredential, request)
        self.forget(request.name)
        return reply.credential

    async def get_credential(self, name: str) -> credential_pb2.CredentialMetadata:
        """Admin/GetCredential."""
        return (await self._call(self._admin.GetCredential, admin_pb2.GetCredentialRequest(name=name))).credential

    async def list_credentials(self, filter: str = "") -> List[credential_pb2.CredentialMetadata]:
        """Admin/ListCredentials: every page, optionally filtered."""
        found: List[credential_pb2.CredentialMetadata] = []
        token = ""
        while True:
            page = await self._call(
                self._admin.ListCredentials,
                admin_pb2.ListCredentialsRequest(page_token=token, filter=filter),
            )
            found.extend(page.credentials)
            if not page.next_page_token:
                return found
            token = page.next_page_token

    async def delete_credential(self, name: str) -> credential_pb2.CredentialMetadata:
        """Admin/DeleteCredential; drops any cached bearer of that name."""
        reply = await self._call(self._admin.DeleteCredential, admin_pb2.DeleteCredentialRequest(name=name))
        self.forget(name)
        return reply.credential

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close()

    async def __aenter__(self) -> "AsyncBrokerClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
