import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_TYPE_UNSPECIFIED: _ClassVar[KeyType]
    KEY_TYPE_MAIN: _ClassVar[KeyType]
    KEY_TYPE_STANDARD: _ClassVar[KeyType]
    KEY_TYPE_RESTRICTED: _ClassVar[KeyType]

class CredentialKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREDENTIAL_KIND_UNSPECIFIED: _ClassVar[CredentialKind]
    CREDENTIAL_KIND_AUTH_TOKEN: _ClassVar[CredentialKind]
    CREDENTIAL_KIND_API_KEY: _ClassVar[CredentialKind]
    CREDENTIAL_KIND_OAUTH_CLIENT: _ClassVar[CredentialKind]
    CREDENTIAL_KIND_TEST: _ClassVar[CredentialKind]
KEY_TYPE_UNSPECIFIED: KeyType
KEY_TYPE_MAIN: KeyType
KEY_TYPE_STANDARD: KeyType
KEY_TYPE_RESTRICTED: KeyType
CREDENTIAL_KIND_UNSPECIFIED: CredentialKind
CREDENTIAL_KIND_AUTH_TOKEN: CredentialKind
CREDENTIAL_KIND_API_KEY: CredentialKind
CREDENTIAL_KIND_OAUTH_CLIENT: CredentialKind
CREDENTIAL_KIND_TEST: CredentialKind

class AuthTokenCredential(_message.Message):
    __slots__ = ("account_sid", "auth_token", "secondary_auth_token")
    ACCOUNT_SID_FIELD_NUMBER: _ClassVar[int]
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_sid: str
    auth_token: str
    secondary_auth_token: str
    def __init__(self, account_sid: _Optional[str] = ..., auth_token: _Optional[str] = ..., secondary_auth_token: _Optional[str] = ...) -> None: ...

class ApiKeyCredential(_message.Message):
    __slots__ = ("account_sid", "key_sid", "secret", "key_type")
    ACCOUNT_SID_FIELD_NUMBER: _ClassVar[int]
    KEY_SID_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    account_sid: str
    key_sid: str
    secret: str
    key_type: KeyType
    def __init__(self, account_sid: _Optional[str] = ..., key_sid: _Optional[str] = ..., secret: _Optional[str] = ..., key_type: _Optional[_Union[KeyType, str]] = ...) -> None: ...

class OAuthClientCredential(_message.Message):
    __slots__ = ("account_sid", "client_id", "client_secret")
    ACCOUNT_SID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    account_sid: str
    client_id: str
    client_secret: str
    def __init__(self, account_sid: _Optional[str] = ..., client_id: _Optional[str] = ..., client_secret: _Optional[str] = ...) -> None: ...

class TestCredential(_message.Message):
    __slots__ = ("account_sid", "auth_token")
    ACCOUNT_SID_FIELD_NUMBER: _ClassVar[int]
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_sid: str
    auth_token: str
    def __init__(self, account_sid: _Optional[str] = ..., auth_token: _Optional[str] = ...) -> None: ...

class CredentialMetadata(_message.Message):
    __slots__ = ("name", "kind", "account_sid", "key_sid", "client_id", "key_type", "labels", "created_at", "updated_at", "has_secondary_auth_token", "manager", "previous_key_sid", "previous_deleted_after", "rotation_step", "rotation_step_after")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_SID_FIELD_NUMBER: _ClassVar[int]
    KEY_SID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    HAS_SECONDARY_AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MANAGER_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_KEY_SID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_DELETED_AFTER_FIELD_NUMBER: _ClassVar[int]
    ROTATION_STEP_FIELD_NUMBER: _ClassVar[int]
    ROTATION_STEP_AFTER_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: CredentialKind
    account_sid: str
    key_sid: str
    client_id: str
    key_type: KeyType
    labels: _containers.ScalarMap[str, str]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    has_secondary_auth_token: bool
    manager: str
    previous_key_sid: str
    previous_deleted_after: _timestamp_pb2.Timestamp
    rotation_step: str
    rotation_step_after: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[CredentialKind, str]] = ..., account_sid: _Optional[str] = ..., key_sid: _Optional[str] = ..., client_id: _Optional[str] = ..., key_type: _Optional[_Union[KeyType, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., has_secondary_auth_token: _Optional[bool] = ..., manager: _Optional[str] = ..., previous_key_sid: _Optional[str] = ..., previous_deleted_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rotation_step: _Optional[str] = ..., rotation_step_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
