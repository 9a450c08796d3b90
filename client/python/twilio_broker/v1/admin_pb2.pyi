import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from twilio_broker.v1 import credential_pb2 as _credential_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PutCredentialRequest(_message.Message):
    __slots__ = ("name", "labels", "auth_token", "api_key", "oauth_client", "test", "manager")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    OAUTH_CLIENT_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    MANAGER_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    auth_token: _credential_pb2.AuthTokenCredential
    api_key: _credential_pb2.ApiKeyCredential
    oauth_client: _credential_pb2.OAuthClientCredential
    test: _credential_pb2.TestCredential
    manager: str
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., auth_token: _Optional[_Union[_credential_pb2.AuthTokenCredential, _Mapping]] = ..., api_key: _Optional[_Union[_credential_pb2.ApiKeyCredential, _Mapping]] = ..., oauth_client: _Optional[_Union[_credential_pb2.OAuthClientCredential, _Mapping]] = ..., test: _Optional[_Union[_credential_pb2.TestCredential, _Mapping]] = ..., manager: _Optional[str] = ...) -> None: ...

class PutCredentialResponse(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: _credential_pb2.CredentialMetadata
    def __init__(self, credential: _Optional[_Union[_credential_pb2.CredentialMetadata, _Mapping]] = ...) -> None: ...

class GetCredentialRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetCredentialResponse(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: _credential_pb2.CredentialMetadata
    def __init__(self, credential: _Optional[_Union[_credential_pb2.CredentialMetadata, _Mapping]] = ...) -> None: ...

class ListCredentialsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListCredentialsResponse(_message.Message):
    __slots__ = ("credentials", "next_page_token")
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    credentials: _containers.RepeatedCompositeFieldContainer[_credential_pb2.CredentialMetadata]
    next_page_token: str
    def __init__(self, credentials: _Optional[_Iterable[_Union[_credential_pb2.CredentialMetadata, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteCredentialRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteCredentialResponse(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: _credential_pb2.CredentialMetadata
    def __init__(self, credential: _Optional[_Union[_credential_pb2.CredentialMetadata, _Mapping]] = ...) -> None: ...

class ReloadPolicyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadPolicyResponse(_message.Message):
    __slots__ = ("rules", "source")
    RULES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    rules: int
    source: str
    def __init__(self, rules: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class RotateCredentialRequest(_message.Message):
    __slots__ = ("name", "overlap_seconds", "acknowledge_api_keys_break", "propagation_delay_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGE_API_KEYS_BREAK_FIELD_NUMBER: _ClassVar[int]
    PROPAGATION_DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    overlap_seconds: int
    acknowledge_api_keys_break: bool
    propagation_delay_seconds: int
    def __init__(self, name: _Optional[str] = ..., overlap_seconds: _Optional[int] = ..., acknowledge_api_keys_break: _Optional[bool] = ..., propagation_delay_seconds: _Optional[int] = ...) -> None: ...

class RotateCredentialResponse(_message.Message):
    __slots__ = ("credential", "previous_key_sid", "previous_deleted_after")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_KEY_SID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_DELETED_AFTER_FIELD_NUMBER: _ClassVar[int]
    credential: _credential_pb2.CredentialMetadata
    previous_key_sid: str
    previous_deleted_after: _timestamp_pb2.Timestamp
    def __init__(self, credential: _Optional[_Union[_credential_pb2.CredentialMetadata, _Mapping]] = ..., previous_key_sid: _Optional[str] = ..., previous_deleted_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackupResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class OpenConsoleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OpenConsoleResponse(_message.Message):
    __slots__ = ("login_url", "expires_at")
    LOGIN_URL_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    login_url: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, login_url: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
