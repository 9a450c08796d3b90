//! Typed builders for MintAccessToken requests and their grants.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::proto;

/// Voice grant.
#[derive(Debug, Clone, Default)]
pub struct VoiceGrant(proto::VoiceGrant);

impl VoiceGrant {
    /// An empty voice grant.
    pub fn new() -> Self {
        Self::default()
    }
    /// Allow incoming calls.
    pub fn incoming(mut self, allow: bool) -> Self {
        self.0.incoming_allow = allow;
        self
    }
    /// The TwiML application (`AP...`) for outgoing calls.
    pub fn outgoing_application(mut self, sid: impl Into<String>) -> Self {
        self.0.outgoing_application_sid = sid.into();
        self
    }
    /// A parameter passed to the outgoing application.
    pub fn outgoing_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0
            .outgoing_application_params
            .insert(name.into(), value.into());
        self
    }
    /// Push credential (`CR...`).
    pub fn push_credential(mut self, sid: impl Into<String>) -> Self {
        self.0.push_credential_sid = sid.into();
        self
    }
    /// Endpoint id.
    pub fn endpoint_id(mut self, id: impl Into<String>) -> Self {
        self.0.endpoint_id = id.into();
        self
    }
}

/// Video grant.
#[derive(Debug, Clone, Default)]
pub struct VideoGrant(proto::VideoGrant);

impl VideoGrant {
    /// Any room.
    pub fn any_room() -> Self {
        Self::default()
    }
    /// One room, by name or `RM` SID.
    pub fn room(room: impl Into<String>) -> Self {
        VideoGrant(proto::VideoGrant { room: room.into() })
    }
}

/// Conversations / Chat grant.
#[derive(Debug, Clone, Default)]
pub struct ChatGrant(proto::ChatGrant);

impl ChatGrant {
    /// For a Conversations service (`IS...`).
    pub fn service(sid: impl Into<String>) -> Self {
        ChatGrant(proto::ChatGrant {
            service_sid: sid.into(),
            ..Default::default()
        })
    }
    /// Endpoint id.
    pub fn endpoint_id(mut self, id: impl Into<String>) -> Self {
        self.0.endpoint_id = id.into();
        self
    }
    /// Deployment role (`RL...`).
    pub fn deployment_role(mut self, sid: impl Into<String>) -> Self {
        self.0.deployment_role_sid = sid.into();
        self
    }
    /// Push credential (`CR...`).
    pub fn push_credential(mut self, sid: impl Into<String>) -> Self {
        self.0.push_credential_sid = sid.into();
        self
    }
}

/// Sync grant.
#[derive(Debug, Clone, Default)]
pub struct SyncGrant(proto::SyncGrant);

impl SyncGrant {
    /// For a Sync service (`IS...`).
    pub fn service(sid: impl Into<String>) -> Self {
        SyncGrant(proto::SyncGrant {
            service_sid: sid.into(),
            ..Default::default()
        })
    }
    /// Endpoint id.
    pub fn endpoint_id(mut self, id: impl Into<String>) -> Self {
        self.0.endpoint_id = id.into();
        self
    }
}

/// TaskRouter grant.
#[derive(Debug, Clone, Default)]
pub struct TaskRouterGrant(proto::TaskRouterGrant);

impl TaskRouterGrant {
    /// For a workspace (`WS...`), worker (`WK...`) and role.
    pub fn new(
        workspace: impl Into<String>,
        worker: impl Into<String>,
        role: impl Into<String>,
    ) -> Self {
        TaskRouterGrant(proto::TaskRouterGrant {
            workspace_sid: workspace.into(),
            worker_sid: worker.into(),
            role: role.into(),
        })
    }
}

/// Twilio Live playback grant: the grant object from the Live API.
#[derive(Debug, Clone, Default)]
pub struct PlaybackGrant(prost_types::Struct);

impl PlaybackGrant {
    /// From string fields of the grant object (e.g. `requestCredentials`, `playbackUrl`).
    pub fn from_fields<K: Into<String>, V: Into<String>>(
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        PlaybackGrant(prost_types::Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.into(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue(v.into())),
                        },
                    )
                })
                .collect(),
        })
    }
}

/// A MintAccessToken request.
#[derive(Debug, Clone)]
pub struct AccessTokenRequest(proto::MintAccessTokenRequest);

impl AccessTokenRequest {
    /// A token signed with API key credential `credential`, for `identity`.
    pub fn new(credential: impl Into<String>, identity: impl Into<String>) -> Self {
        AccessTokenRequest(proto::MintAccessTokenRequest {
            credential: credential.into(),
            identity: identity.into(),
            ..Default::default()
        })
    }
    /// Lifetime (1 s to 24 h; default 1 h). Sub-second parts are dropped.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.0.ttl_seconds = u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX);
        self
    }
    /// Not valid before `when`.
    pub fn not_before(mut self, when: SystemTime) -> Self {
        let secs = when
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.0.not_before = Some(prost_types::Timestamp {
            seconds: i64::try_from(secs).unwrap_or(i64::MAX),
            nanos: 0,
        });
        self
    }
    /// Twilio region for the `twr` header.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.0.region = region.into();
        self
    }
    /// Adds a voice grant.
    pub fn voice(mut self, grant: VoiceGrant) -> Self {
        self.0.voice = Some(grant.0);
        self
    }
    /// Adds a video grant.
    pub fn video(mut self, grant: VideoGrant) -> Self {
        self.0.video = Some(grant.0);
        self
    }
    /// Adds a Conversations/Chat grant.
    pub fn chat(mut self, grant: ChatGrant) -> Self {
        self.0.chat = Some(grant.0);
        self
    }
    /// Adds a Sync grant.
    pub fn sync(mut self, grant: SyncGrant) -> Self {
        self.0.sync = Some(grant.0);
        self
    }
    /// Adds a TaskRouter grant.
    pub fn task_router(mut self, grant: TaskRouterGrant) -> Self {
        self.0.task_router = Some(grant.0);
        self
    }
    /// Adds a playback grant.
    pub fn playback(mut self, grant: PlaybackGrant) -> Self {
        self.0.playback = Some(grant.0);
        self
    }
    pub(crate) fn into_proto(self) -> proto::MintAccessTokenRequest {
        self.0
    }
}

impl From<AccessTokenRequest> for proto::MintAccessTokenRequest {
    fn from(request: AccessTokenRequest) -> Self {
        request.0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn builders_fill_the_proto() {
        let request: proto::MintAccessTokenRequest = AccessTokenRequest::new("k", "alice")
            .ttl(Duration::from_secs(600))
            .region("au1")
            .voice(
                VoiceGrant::new()
                    .incoming(true)
                    .outgoing_application("AP1")
                    .outgoing_param("a", "b"),
            )
            .video(VideoGrant::room("r"))
            .chat(ChatGrant::service("IS1").endpoint_id("e"))
            .sync(SyncGrant::service("IS2"))
            .task_router(TaskRouterGrant::new("WS1", "WK1", "worker"))
            .playback(PlaybackGrant::from_fields([("playbackUrl", "u")]))
            .into();
        assert_eq!(request.ttl_seconds, 600);
        assert_eq!(request.region, "au1");
        let voice = request.voice.expect("voice");
        assert!(voice.incoming_allow);
        assert_eq!(
            voice.outgoing_application_params,
            HashMap::from([("a".into(), "b".into())])
        );
        assert_eq!(request.video.expect("video").room, "r");
        assert_eq!(request.chat.expect("chat").endpoint_id, "e");
        assert_eq!(request.sync.expect("sync").service_sid, "IS2");
        assert_eq!(request.task_router.expect("tr").role, "worker");
        assert!(
            request
                .playback
                .expect("playback")
                .fields
                .contains_key("playbackUrl")
        );
    }
}
