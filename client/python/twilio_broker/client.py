"""A thin, typed wrapper over the generated stubs, with a bearer-token cache."""

import threading
import time
from dataclasses import dataclass
from typing import Optional

import grpc

from twilio_broker.v1 import broker_pb2, broker_pb2_grpc


class BrokerError(Exception):
    """A gRPC error from the broker, with its status code name (e.g. NOT_FOUND)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Bearer:
    """A bearer token: treat access_token as a secret."""

    access_token: str
    expires_at: float  # seconds since the epoch
    account_sid: str

    def __repr__(self) -> str:
        return f"Bearer(access_token=[REDACTED], expires_at={self.expires_at}, account_sid={self.account_sid!r})"


def _channel(address: str, credentials: Optional[grpc.ChannelCredentials]) -> grpc.Channel:
    # grpcio understands "unix:/path" and "host:port" natively.
    if credentials is not None:
        return grpc.secure_channel(address, credentials)
    return grpc.insecure_channel(address)


class BrokerClient:
    """Calls a twilio-broker. Thread-safe; share one per process."""

    def __init__(self, address: str, credentials: Optional[grpc.ChannelCredentials] = None,
                 safety_margin: float = 60.0, timeout: float = 10.0):
        self._channel = _channel(address, credentials)
        self._stub = broker_pb2_grpc.BrokerStub(self._channel)
        self._timeout = timeout
        self._margin = safety_margin
        self._lock = threading.Lock()
        self._cache: dict = {}
        self.bearer_fetches = 0

    def get_bearer(self, credential: str, min_ttl_seconds: int = 0) -> Bearer:
        """GetBearer, uncached."""
        try:
            reply = self._stub.GetBearer(
                broker_pb2.GetBearerRequest(credential=credential, min_ttl_seconds=min_ttl_seconds),
                timeout=self._timeout,
            )
        except grpc.RpcError as err:
            raise BrokerError(err.code().name, err.details()) from None
        expires = reply.expires_at.seconds + reply.expires_at.nanos / 1e9
        return Bearer(reply.access_token, expires, reply.account_sid)

    def bearer(self, credential: str) -> Bearer:
        """A bearer token, cached until `safety_margin` seconds before it expires.

        One thread per process asks the broker; the others wait for its answer.
        """
        with self._lock:
            cached = self._cache.get(credential)
            if cached is not None and cached.expires_at - time.time() > self._margin:
                return cached
            fresh = self.get_bearer(credential, min_ttl_seconds=int(self._margin * 2))
            self.bearer_fetches += 1
            self._cache[credential] = fresh
            return fresh

    def mint_access_token(self, request: broker_pb2.MintAccessTokenRequest) -> broker_pb2.MintAccessTokenResponse:
        """MintAccessToken."""
        try:
            return self._stub.MintAccessToken(request, timeout=self._timeout)
        except grpc.RpcError as err:
            raise BrokerError(err.code().name, err.details()) from None

    def close(self) -> None:
        self._channel.close()
