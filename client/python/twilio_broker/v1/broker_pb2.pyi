import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from twilio_broker.v1 import credential_pb2 as _credential_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Environment(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENVIRONMENT_UNSPECIFIED: _ClassVar[Environment]
    ENVIRONMENT_PROTOTYPE: _ClassVar[Environment]
    ENVIRONMENT_TEST: _ClassVar[Environment]
    ENVIRONMENT_PRODUCTION: _ClassVar[Environment]

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    SIDE_SERVER: _ClassVar[Side]
    SIDE_CLIENT: _ClassVar[Side]

class ClientSdk(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLIENT_SDK_UNSPECIFIED: _ClassVar[ClientSdk]
    CLIENT_SDK_VOICE: _ClassVar[ClientSdk]
    CLIENT_SDK_VIDEO: _ClassVar[ClientSdk]
    CLIENT_SDK_CONVERSATIONS: _ClassVar[ClientSdk]
    CLIENT_SDK_SYNC: _ClassVar[ClientSdk]

class Method(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METHOD_UNSPECIFIED: _ClassVar[Method]
    METHOD_AUTH_TOKEN: _ClassVar[Method]
    METHOD_API_KEY: _ClassVar[Method]
    METHOD_OAUTH2: _ClassVar[Method]
    METHOD_ACCESS_TOKEN: _ClassVar[Method]
    METHOD_TEST_CREDENTIALS: _ClassVar[Method]

class WebhookSecret(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_SECRET_UNSPECIFIED: _ClassVar[WebhookSecret]
    WEBHOOK_SECRET_PRIMARY: _ClassVar[WebhookSecret]
    WEBHOOK_SECRET_SECONDARY: _ClassVar[WebhookSecret]
ENVIRONMENT_UNSPECIFIED: Environment
ENVIRONMENT_PROTOTYPE: Environment
ENVIRONMENT_TEST: Environment
ENVIRONMENT_PRODUCTION: Environment
SIDE_UNSPECIFIED: Side
SIDE_SERVER: Side
SIDE_CLIENT: Side
CLIENT_SDK_UNSPECIFIED: ClientSdk
CLIENT_SDK_VOICE: ClientSdk
CLIENT_SDK_VIDEO: ClientSdk
CLIENT_SDK_CONVERSATIONS: ClientSdk
CLIENT_SDK_SYNC: ClientSdk
METHOD_UNSPECIFIED: Method
METHOD_AUTH_TOKEN: Method
METHOD_API_KEY: Method
METHOD_OAUTH2: Method
METHOD_ACCESS_TOKEN: Method
METHOD_TEST_CREDENTIALS: Method
WEBHOOK_SECRET_UNSPECIFIED: WebhookSecret
WEBHOOK_SECRET_PRIMARY: WebhookSecret
WEBHOOK_SECRET_SECONDARY: WebhookSecret

class GetBearerRequest(_message.Message):
    __slots__ = ("credential", "min_ttl_seconds")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    MIN_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    credential: str
    min_ttl_seconds: int
    def __init__(self, credential: _Optional[str] = ..., min_ttl_seconds: _Optional[int] = ...) -> None: ...

class GetBearerResponse(_message.Message):
    __slots__ = ("access_token", "token_type", "expires_at", "account_sid")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_SID_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    token_type: str
    expires_at: _timestamp_pb2.Timestamp
    account_sid: str
    def __init__(self, access_token: _Optional[str] = ..., token_type: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., account_sid: _Optional[str] = ...) -> None: ...

class VoiceGrant(_message.Message):
    __slots__ = ("incoming_allow", "outgoing_application_sid", "outgoing_application_params", "push_credential_sid", "endpoint_id", "outgoing_application_params_json")
    class OutgoingApplicationParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INCOMING_ALLOW_FIELD_NUMBER: _ClassVar[int]
    OUTGOING_APPLICATION_SID_FIELD_NUMBER: _ClassVar[int]
    OUTGOING_APPLICATION_PARAMS_FIELD_NUMBER: _ClassVar[int]
    PUSH_CREDENTIAL_SID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTGOING_APPLICATION_PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    incoming_allow: bool
    outgoing_application_sid: str
    outgoing_application_params: _containers.ScalarMap[str, str]
    push_credential_sid: str
    endpoint_id: str
    outgoing_application_params_json: str
    def __init__(self, incoming_allow: _Optional[bool] = ..., outgoing_application_sid: _Optional[str] = ..., outgoing_application_params: _Optional[_Mapping[str, str]] = ..., push_credential_sid: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., outgoing_application_params_json: _Optional[str] = ...) -> None: ...

class VideoGrant(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class ChatGrant(_message.Message):
    __slots__ = ("service_sid", "endpoint_id", "deployment_role_sid", "push_credential_sid")
    SERVICE_SID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ROLE_SID_FIELD_NUMBER: _ClassVar[int]
    PUSH_CREDENTIAL_SID_FIELD_NUMBER: _ClassVar[int]
    service_sid: str
    endpoint_id: str
    deployment_role_sid: str
    push_credential_sid: str
    def __init__(self, service_sid: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., deployment_role_sid: _Optional[str] = ..., push_credential_sid: _Optional[str] = ...) -> None: ...

class SyncGrant(_message.Message):
    __slots__ = ("service_sid", "endpoint_id")
    SERVICE_SID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    service_sid: str
    endpoint_id: str
    def __init__(self, service_sid: _Optional[str] = ..., endpoint_id: _Optional[str] = ...) -> None: ...

class TaskRouterGrant(_message.Message):
    __slots__ = ("workspace_sid", "worker_sid", "role")
    WORKSPACE_SID_FIELD_NUMBER: _ClassVar[int]
    WORKER_SID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    workspace_sid: str
    worker_sid: str
    role: str
    def __init__(self, workspace_sid: _Optional[str] = ..., worker_sid: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class MintAccessTokenRequest(_message.Message):
    __slots__ = ("credential", "identity", "ttl_seconds", "not_before", "region", "voice", "video", "chat", "sync", "task_router", "playback", "playback_json")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    CHAT_FIELD_NUMBER: _ClassVar[int]
    SYNC_FIELD_NUMBER: _ClassVar[int]
    TASK_ROUTER_FIELD_NUMBER: _ClassVar[int]
    PLAYBACK_FIELD_NUMBER: _ClassVar[int]
    PLAYBACK_JSON_FIELD_NUMBER: _ClassVar[int]
    credential: str
    identity: str
    ttl_seconds: int
    not_before: _timestamp_pb2.Timestamp
    region: str
    voice: VoiceGrant
    video: VideoGrant
    chat: ChatGrant
    sync: SyncGrant
    task_router: TaskRouterGrant
    playback: _struct_pb2.Struct
    playback_json: str
    def __init__(self, credential: _Optional[str] = ..., identity: _Optional[str] = ..., ttl_seconds: _Optional[int] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., region: _Optional[str] = ..., voice: _Optional[_Union[VoiceGrant, _Mapping]] = ..., video: _Optional[_Union[VideoGrant, _Mapping]] = ..., chat: _Optional[_Union[ChatGrant, _Mapping]] = ..., sync: _Optional[_Union[SyncGrant, _Mapping]] = ..., task_router: _Optional[_Union[TaskRouterGrant, _Mapping]] = ..., playback: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., playback_json: _Optional[str] = ...) -> None: ...

class MintAccessTokenResponse(_message.Message):
    __slots__ = ("token", "expires_at", "jti")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    JTI_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_at: _timestamp_pb2.Timestamp
    jti: str
    def __init__(self, token: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., jti: _Optional[str] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("environment", "side", "time_limited", "charge_free", "needs_account_management", "least_privilege", "resources", "client_sdk", "credential")
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMITED_FIELD_NUMBER: _ClassVar[int]
    CHARGE_FREE_FIELD_NUMBER: _ClassVar[int]
    NEEDS_ACCOUNT_MANAGEMENT_FIELD_NUMBER: _ClassVar[int]
    LEAST_PRIVILEGE_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SDK_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    environment: Environment
    side: Side
    time_limited: bool
    charge_free: bool
    needs_account_management: bool
    least_privilege: bool
    resources: _containers.RepeatedScalarFieldContainer[str]
    client_sdk: ClientSdk
    credential: str
    def __init__(self, environment: _Optional[_Union[Environment, str]] = ..., side: _Optional[_Union[Side, str]] = ..., time_limited: _Optional[bool] = ..., charge_free: _Optional[bool] = ..., needs_account_management: _Optional[bool] = ..., least_privilege: _Optional[bool] = ..., resources: _Optional[_Iterable[str]] = ..., client_sdk: _Optional[_Union[ClientSdk, str]] = ..., credential: _Optional[str] = ...) -> None: ...

class Limit(_message.Message):
    __slots__ = ("id", "text", "twilio_error_code", "http_status")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TWILIO_ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    twilio_error_code: int
    http_status: int
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., twilio_error_code: _Optional[int] = ..., http_status: _Optional[int] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("id", "text")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("method", "key_type", "reasons", "warnings", "limits", "next_steps", "review", "rules", "credential_age_seconds")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEPS_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    method: Method
    key_type: _credential_pb2.KeyType
    reasons: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    limits: _containers.RepeatedCompositeFieldContainer[Limit]
    next_steps: _containers.RepeatedScalarFieldContainer[str]
    review: _containers.RepeatedCompositeFieldContainer[Finding]
    rules: _containers.RepeatedScalarFieldContainer[str]
    credential_age_seconds: int
    def __init__(self, method: _Optional[_Union[Method, str]] = ..., key_type: _Optional[_Union[_credential_pb2.KeyType, str]] = ..., reasons: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ..., limits: _Optional[_Iterable[_Union[Limit, _Mapping]]] = ..., next_steps: _Optional[_Iterable[str]] = ..., review: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., rules: _Optional[_Iterable[str]] = ..., credential_age_seconds: _Optional[int] = ...) -> None: ...

class FormParam(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class ValidateWebhookRequest(_message.Message):
    __slots__ = ("credential", "url", "params", "body", "signature", "signature_settings")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    credential: str
    url: str
    params: _containers.RepeatedCompositeFieldContainer[FormParam]
    body: str
    signature: str
    signature_settings: str
    def __init__(self, credential: _Optional[str] = ..., url: _Optional[str] = ..., params: _Optional[_Iterable[_Union[FormParam, _Mapping]]] = ..., body: _Optional[str] = ..., signature: _Optional[str] = ..., signature_settings: _Optional[str] = ...) -> None: ...

class ValidateWebhookResponse(_message.Message):
    __slots__ = ("valid", "reason", "matched")
    VALID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    reason: str
    matched: WebhookSecret
    def __init__(self, valid: _Optional[bool] = ..., reason: _Optional[str] = ..., matched: _Optional[_Union[WebhookSecret, str]] = ...) -> None: ...
