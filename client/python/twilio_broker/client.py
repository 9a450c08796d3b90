"""A thin, typed wrapper over the generated stubs, with a bearer-token cache."""

import ipaddress
import logging
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import grpc

from twilio_broker.v1 import admin_pb2, admin_pb2_grpc, broker_pb2, broker_pb2_grpc, credential_pb2


#: The `google.rpc.ErrorInfo.domain` of errors the broker sends.
ERROR_DOMAIN = "twilio-broker"
#: The reason GetBearer gives when `min_ttl_seconds` cannot be met.
MIN_TTL_UNREACHABLE = "MIN_TTL_UNREACHABLE"
_DETAILS_KEY = "grpc-status-details-bin"


class BrokerError(Exception):
    """A gRPC error from the broker, with its status code name (e.g. NOT_FOUND).

    Decide on `reason` (the broker's `google.rpc.ErrorInfo.reason`, such as
    MIN_TTL_UNREACHABLE or RATE_LIMITED; the README lists them), never on
    `message`, which is for people and may change. `metadata` holds the
    ErrorInfo metadata (`field`, `credential`, ...); `retry_after` is the
    `google.rpc.RetryInfo` delay in seconds, when the broker knows one.
    """

    def __init__(self, code: str, message: str, reason: Optional[str] = None,
                 metadata: Optional[Dict[str, str]] = None, retry_after: Optional[float] = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata: Dict[str, str] = dict(metadata or {})
        self.retry_after = retry_after

    @classmethod
    def from_rpc_error(cls, err) -> "BrokerError":
        """From a `grpc.RpcError` or `grpc.aio.AioRpcError`: the code and
        message, and the reason, metadata and retry delay from the
        `grpc-status-details-bin` trailer (a `google.rpc.Status`)."""
        reason, metadata, retry_after = _details(err.trailing_metadata() or ())
        return cls(err.code().name, err.details() or "", reason, metadata, retry_after)


def _details(trailing_metadata) -> Tuple[Optional[str], Dict[str, str], Optional[float]]:
    """ErrorInfo (of the broker's domain) and RetryInfo from the trailers."""
    from google.rpc import error_details_pb2, status_pb2

    for key, value in trailing_metadata:
        if key != _DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        reason, metadata, retry_after = None, {}, None
        for any_detail in status.details:
            info = error_details_pb2.ErrorInfo()
            retry = error_details_pb2.RetryInfo()
            if any_detail.Unpack(info) and info.domain == ERROR_DOMAIN:
                reason, metadata = info.reason, dict(info.metadata)
            elif any_detail.Unpack(retry) and retry.HasField("retry_delay"):
                retry_after = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
        return reason, metadata, retry_after
    return None, {}, None


@dataclass(frozen=True)
class Bearer:
    """A bearer token: treat access_token as a secret."""

    access_token: str
    expires_at: float  # seconds since the epoch
    account_sid: str

    def __repr__(self) -> str:
        return f"Bearer(access_token=[REDACTED], expires_at={self.expires_at}, account_sid={self.account_sid!r})"


def _target(address: str) -> Tuple[str, bool]:
    """grpcio's target for `address`, and whether TLS is implied.

    Accepts what the Rust client accepts: `host:port`, `http://host:port`,
    `https://host:port` and `unix:/path` (grpcio understands the last natively).
    """
    if address.startswith("http://"):
        return address[len("http://"):].rstrip("/"), False
    if address.startswith("https://"):
        return address[len("https://"):].rstrip("/"), True
    return address, False


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host(target: str) -> str:
    authority = target.split("/", 1)[0]
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    return authority.rsplit(":", 1)[0] if ":" in authority else authority


def _check_plaintext(address: str, target: str) -> None:
    """Plaintext to a non-loopback host is refused unless `http://` is written
    out, which is allowed with a loud warning (as the CLI and the Rust client)."""
    if target.startswith("unix:") or target.startswith("unix-abstract:"):
        return
    host = _host(target)
    if _is_loopback(host):
        return
    if address.startswith("http://"):
        message = (f"twilio-broker client: speaking PLAINTEXT to {host} because the address says "
                   "http://; bearer tokens and credentials cross the network unencrypted")
        logging.getLogger("twilio_broker").warning(message)
        warnings.warn(message, stacklevel=3)
        return
    raise ValueError(
        f"{address}: refusing plaintext to {host}, which is not this machine: use "
        f"https://{address} (with credentials=grpc.ssl_channel_credentials(...)), or write "
        f"http://{address} to insist on plaintext")


def _options(target: str) -> List[Tuple[str, str]]:
    """Channel options: `localhost` as `:authority` on a Unix socket (grpcio
    would send the socket path; the broker accepts both, other servers may not)."""
    if target.startswith("unix:") or target.startswith("unix-abstract:"):
        return [("grpc.default_authority", "localhost")]
    return []


def _channel(address: str, credentials: Optional[grpc.ChannelCredentials]) -> grpc.Channel:
    target, tls = _target(address)
    if credentials is None and tls:
        credentials = grpc.ssl_channel_credentials()
    if credentials is not None:
        return grpc.secure_channel(target, credentials, options=_options(target))
    _check_plaintext(address, target)
    return grpc.insecure_channel(target, options=_options(target))


def _seconds(timestamp) -> float:
    return timestamp.seconds + timestamp.nanos / 1e9


class BrokerClient:
    """Calls a twilio-broker. Thread-safe; share one per process.

    `address`: `host:port`, `http(s)://host:port` or `unix:/path`. For mTLS pass
    `grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)`.
    """

    def __init__(self, address: str, credentials: Optional[grpc.ChannelCredentials] = None,
                 safety_margin: float = 60.0, timeout: float = 10.0):
        self._channel = _channel(address, credentials)
        self._broker = broker_pb2_grpc.BrokerStub(self._channel)
        self._admin = admin_pb2_grpc.AdminStub(self._channel)
        self._timeout = timeout
        self._margin = safety_margin
        self._lock = threading.Lock()
        self._fetch_locks: Dict[str, threading.Lock] = {}
        self._cache: Dict[str, Tuple[Bearer, float]] = {}  # credential -> (bearer, margin)
        self.bearer_fetches = 0

    def _call(self, method, request):
        try:
            return method(request, timeout=self._timeout)
        except grpc.RpcError as err:
            raise BrokerError.from_rpc_error(err) from None

    # --- Broker service -------------------------------------------------

    def get_bearer(self, credential: str, min_ttl_seconds: int = 0) -> Bearer:
        """GetBearer, uncached."""
        reply = self._call(self._broker.GetBearer,
                           broker_pb2.GetBearerRequest(credential=credential, min_ttl_seconds=min_ttl_seconds))
        return Bearer(reply.access_token, _seconds(reply.expires_at), reply.account_sid)

    def _cached(self, credential: str) -> Optional[Bearer]:
        cached = self._cache.get(credential)
        if cached is not None and cached[0].expires_at - time.time() > cached[1]:
            return cached[0]
        return None

    def _fetch(self, credential: str) -> Tuple[Bearer, float]:
        received = time.time()
        try:
            with self._lock:
                self.bearer_fetches += 1
            return self.get_bearer(credential, min_ttl_seconds=int(self._margin * 2)), self._margin
        except BrokerError as err:
            # Twilio issues this credential's tokens for less than twice our
            # margin (a short access_token_ttl): take what the broker has and
            # keep it for half its remaining life at most.
            if err.reason != MIN_TTL_UNREACHABLE:
                raise
        with self._lock:
            self.bearer_fetches += 1
        bearer = self.get_bearer(credential, min_ttl_seconds=0)
        return bearer, min(self._margin, (bearer.expires_at - received) / 2)

    def bearer(self, credential: str) -> Bearer:
        """A bearer token, cached until `safety_margin` seconds before it expires
        (half its life for tokens shorter than twice the margin).

        Per credential, one thread asks the broker; the others wait for its answer.
        `bearer_fetches` counts the broker calls.
        """
        with self._lock:
            cached = self._cached(credential)
            if cached is not None:
                return cached
            fetch_lock = self._fetch_locks.setdefault(credential, threading.Lock())
        with fetch_lock:
            with self._lock:
                cached = self._cached(credential)
                if cached is not None:
                    return cached
            fresh, margin = self._fetch(credential)
            with self._lock:
                self._cache[credential] = (fresh, margin)
            return fresh

    def forget(self, credential: str) -> None:
        """Drops a cached bearer (e.g. after Twilio answered 401)."""
        with self._lock:
            self._cache.pop(credential, None)

    def mint_access_token(self, request: broker_pb2.MintAccessTokenRequest) -> broker_pb2.MintAccessTokenResponse:
        """MintAccessToken: build the request with the `broker_pb2` grant messages."""
        return self._call(self._broker.MintAccessToken, request)

    def validate_webhook(self, credential: str, url: str, signature: str,
                         params: Iterable[Tuple[str, str]] = (), body: str = "",
                         signature_settings: str = "") -> broker_pb2.ValidateWebhookResponse:
        """ValidateWebhook: `.valid` and, when not, `.reason`."""
        request = broker_pb2.ValidateWebhookRequest(
            credential=credential, url=url, signature=signature, body=body,
            signature_settings=signature_settings,
            params=[broker_pb2.FormParam(name=n, value=v) for n, v in params])
        return self._call(self._broker.ValidateWebhook, request)

    def recommend(self, request: broker_pb2.RecommendRequest) -> broker_pb2.RecommendResponse:
        """Recommend."""
        return self._call(self._broker.Recommend, request)

    # --- Admin service --------------------------------------------------

    def put_credential(self, request: admin_pb2.PutCredentialRequest) -> credential_pb2.CredentialMetadata:
        """Admin/PutCredential; drops any cached bearer of that name."""
        reply = self._call(self._admin.PutCredential, request)
        self.forget(request.name)
        return reply.credential

    def get_credential(self, name: str) -> credential_pb2.CredentialMetadata:
        """Admin/GetCredential."""
        return self._call(self._admin.GetCredential, admin_pb2.GetCredentialRequest(name=name)).credential

    def list_credentials(self, filter: str = "") -> List[credential_pb2.CredentialMetadata]:
        """Admin/ListCredentials: every page, optionally filtered
        (e.g. ``kind = api_key AND labels.environment = production``)."""
        found: List[credential_pb2.CredentialMetadata] = []
        token = ""
        while True:
            page = self._call(
                self._admin.ListCredentials,
                admin_pb2.ListCredentialsRequest(page_token=token, filter=filter),
            )
            found.extend(page.credentials)
            if not page.next_page_token:
                return found
            token = page.next_page_token

    def delete_credential(self, name: str) -> credential_pb2.CredentialMetadata:
        """Admin/DeleteCredential; drops any cached bearer of that name."""
        reply = self._call(self._admin.DeleteCredential, admin_pb2.DeleteCredentialRequest(name=name))
        self.forget(name)
        return reply.credential

    def reload_policy(self) -> admin_pb2.ReloadPolicyResponse:
        """Admin/ReloadPolicy: `.rules` in force and their `.source`."""
        return self._call(self._admin.ReloadPolicy, admin_pb2.ReloadPolicyRequest())

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "BrokerClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
