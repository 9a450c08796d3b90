//! The grants an Access Token carries, their checks, and their JSON exactly
//! as twilio-python 9.13's grant classes emit it (WIRE.md 1.2): a sub-field
//! only when set, fields in the SDK's order, an empty grant still `{}`.

use super::json::{self, Json, Object};
use crate::error::{Error, Result};
use crate::sid::{self, SidKind};

/// Voice (`voice`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VoiceGrant {
    /// Emits `incoming: {allow: true}`.
    pub incoming_allow: bool,
    /// `AP...`; emits `outgoing.application_sid`.
    pub outgoing_application_sid: String,
    /// `outgoing.params`, in this order; only with an application SID.
    pub outgoing_application_params: Object,
    /// `CR...`
    pub push_credential_sid: String,
    /// The device's endpoint id.
    pub endpoint_id: String,
}

/// Video (`video`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VideoGrant {
    /// Room name or `RM...`; empty for any room.
    pub room: String,
}

/// Conversations / Chat (`chat`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatGrant {
    /// `IS...`
    pub service_sid: String,
    /// The device's endpoint id.
    pub endpoint_id: String,
    /// `RL...`
    pub deployment_role_sid: String,
    /// `CR...`
    pub push_credential_sid: String,
}

/// Sync (`data_sync`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncGrant {
    /// `IS...`
    pub service_sid: String,
    /// The device's endpoint id.
    pub endpoint_id: String,
}

/// TaskRouter (`task_router`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskRouterGrant {
    /// `WS...`
    pub workspace_sid: String,
    /// `WK...`
    pub worker_sid: String,
    /// e.g. `worker`.
    pub role: String,
}

/// Every grant a token may carry; emitted in this field order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    /// `voice`
    pub voice: Option<VoiceGrant>,
    /// `video`
    pub video: Option<VideoGrant>,
    /// `chat`
    pub chat: Option<ChatGrant>,
    /// `data_sync`
    pub sync: Option<SyncGrant>,
    /// `task_router`
    pub task_router: Option<TaskRouterGrant>,
    /// `player`: the grant object from Twilio Live, embedded as is.
    pub playback: Option<Object>,
}

impl Grants {
    /// True when no grant is present.
    pub fn is_empty(&self) -> bool {
        self.voice.is_none()
            && self.video.is_none()
            && self.chat.is_none()
            && self.sync.is_none()
            && self.task_router.is_none()
            && self.playback.is_none()
    }

    /// The keys of the grants present, e.g. `["voice", "video"]`, for audit.
    pub fn keys(&self) -> Vec<&'static str> {
        [
            (self.voice.is_some(), "voice"),
            (self.video.is_some(), "video"),
            (self.chat.is_some(), "chat"),
            (self.sync.is_some(), "data_sync"),
            (self.task_router.is_some(), "task_router"),
            (self.playback.is_some(), "player"),
        ]
        .into_iter()
        .filter_map(|(present, key)| present.then_some(key))
        .collect()
    }

    /// Checks every SID by its prefix; errors name the request field.
    pub fn check(&self) -> Result<()> {
        let sid = |field: &str, kind: SidKind, value: &str| -> Result<()> {
            if value.is_empty() {
                return Ok(());
            }
            sid::check(kind, value).map_err(|reason| Error::invalid(field, reason.to_string()))
        };
        if let Some(v) = &self.voice {
            sid(
                "voice.outgoing_application_sid",
                SidKind::Application,
                &v.outgoing_application_sid,
            )?;
            sid(
                "voice.push_credential_sid",
                SidKind::PushCredential,
                &v.push_credential_sid,
            )?;
            if v.outgoing_application_sid.is_empty() && !v.outgoing_application_params.is_empty() {
                return Err(Error::invalid(
                    "voice.outgoing_application_params",
                    "needs voice.outgoing_application_sid: Twilio passes the params to that TwiML application",
                ));
            }
        }
        if let Some(c) = &self.chat {
            sid("chat.service_sid", SidKind::Service, &c.service_sid)?;
            sid(
                "chat.deployment_role_sid",
                SidKind::Role,
                &c.deployment_role_sid,
            )?;
            sid(
                "chat.push_credential_sid",
                SidKind::PushCredential,
                &c.push_credential_sid,
            )?;
        }
        if let Some(s) = &self.sync {
            sid("sync.service_sid", SidKind::Service, &s.service_sid)?;
        }
        if let Some(t) = &self.task_router {
            sid(
                "task_router.workspace_sid",
                SidKind::Workspace,
                &t.workspace_sid,
            )?;
            sid("task_router.worker_sid", SidKind::Worker, &t.worker_sid)?;
        }
        Ok(())
    }

    /// Appends `"key":{...}` for each grant present, comma separated, in
    /// twilio-python's layout. Returns whether anything was written.
    pub fn write(&self, out: &mut String) -> bool {
        let mut first = true;
        let mut open = |out: &mut String, key: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
        };
        if let Some(v) = &self.voice {
            open(out, "voice");
            let mut fields = Fields::new(out);
            if v.incoming_allow {
                fields.raw("incoming", "{\"allow\":true}");
            }
            if !v.outgoing_application_sid.is_empty() {
                let out = fields.key("outgoing");
                out.push_str("{\"application_sid\":");
                json::write_str(out, &v.outgoing_application_sid);
                if !v.outgoing_application_params.is_empty() {
                    out.push_str(",\"params\":");
                    json::write_object(out, &v.outgoing_application_params);
                }
                out.push('}');
            }
            fields.str("push_credential_sid", &v.push_credential_sid);
            fields.str("endpoint_id", &v.endpoint_id);
            fields.close();
        }
        if let Some(v) = &self.video {
            open(out, "video");
            let mut fields = Fields::new(out);
            fields.str("room", &v.room);
            fields.close();
        }
        if let Some(c) = &self.chat {
            open(out, "chat");
            let mut fields = Fields::new(out);
            fields.str("service_sid", &c.service_sid);
            fields.str("endpoint_id", &c.endpoint_id);
            fields.str("deployment_role_sid", &c.deployment_role_sid);
            fields.str("push_credential_sid", &c.push_credential_sid);
            fields.close();
        }
        if let Some(s) = &self.sync {
            open(out, "data_sync");
            let mut fields = Fields::new(out);
            fields.str("service_sid", &s.service_sid);
            fields.str("endpoint_id", &s.endpoint_id);
            fields.close();
        }
        if let Some(t) = &self.task_router {
            open(out, "task_router");
            let mut fields = Fields::new(out);
            fields.str("workspace_sid", &t.workspace_sid);
            fields.str("worker_sid", &t.worker_sid);
            fields.str("role", &t.role);
            fields.close();
        }
        if let Some(p) = &self.playback {
            open(out, "player");
            json::write_object(out, p);
        }
        !first
    }
}

/// Writes one grant object, skipping empty fields as the SDKs do.
struct Fields<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Fields<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        Fields { out, empty: true }
    }

    fn key(&mut self, key: &str) -> &mut String {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    fn raw(&mut self, key: &str, json: &str) {
        self.key(key).push_str(json);
    }

    fn str(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            json::write_str(self.key(key), value);
        }
    }

    fn close(self) {
        self.out.push('}');
    }
}

/// A JSON value for a playback field given as a protobuf `Value`: integral
/// numbers within ±2^53 become integers (as a JSON producer would send them),
/// others Python floats.
pub fn number(value: f64) -> Option<Json> {
    if !value.is_finite() {
        return None;
    }
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.fract() == 0.0 && value.abs() <= EXACT {
        // Exact: integral and within the range f64 represents without gaps.
        #[allow(clippy::cast_possible_truncation)]
        return Some(Json::Int(value as i128));
    }
    Some(Json::Float(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(grants: &Grants) -> String {
        let mut out = String::new();
        grants.write(&mut out);
        out
    }

    #[test]
    fn empty_grants_stay_as_empty_objects() {
        let grants = Grants {
            video: Some(VideoGrant::default()),
            chat: Some(ChatGrant::default()),
            ..Grants::default()
        };
        assert_eq!(written(&grants), r#""video":{},"chat":{}"#);
        assert_eq!(grants.keys(), ["video", "chat"]);
    }

    #[test]
    fn sid_checks_name_the_field() {
        let ap = "AP00112233445566778899aabbccddeeff";
        let cases: Vec<(Grants, &str)> = vec![
            (
                Grants {
                    voice: Some(VoiceGrant {
                        outgoing_application_sid: "CR00112233445566778899aabbccddeeff".into(),
                        ..VoiceGrant::default()
                    }),
                    ..Grants::default()
                },
                "voice.outgoing_application_sid",
            ),
            (
                Grants {
                    voice: Some(VoiceGrant {
                        outgoing_application_sid: ap.into(),
                        push_credential_sid: "CR1".into(),
                        ..VoiceGrant::default()
                    }),
                    ..Grants::default()
                },
                "voice.push_credential_sid",
            ),
            (
                Grants {
                    voice: Some(VoiceGrant {
                        outgoing_application_params: vec![("a".into(), Json::Int(1))],
                        ..VoiceGrant::default()
                    }),
                    ..Grants::default()
                },
                "voice.outgoing_application_params",
            ),
            (
                Grants {
                    chat: Some(ChatGrant {
                        deployment_role_sid: ap.into(),
                        ..ChatGrant::default()
                    }),
                    ..Grants::default()
                },
                "chat.deployment_role_sid",
            ),
            (
                Grants {
                    sync: Some(SyncGrant {
                        service_sid: "ISxyz".into(),
                        ..SyncGrant::default()
                    }),
                    ..Grants::default()
                },
                "sync.service_sid",
            ),
            (
                Grants {
                    task_router: Some(TaskRouterGrant {
                        worker_sid: "WS00112233445566778899aabbccddeeff".into(),
                        ..TaskRouterGrant::default()
                    }),
                    ..Grants::default()
                },
                "task_router.worker_sid",
            ),
        ];
        for (grants, field) in cases {
            let err = grants.check().expect_err(field).to_string();
            assert!(err.starts_with(field), "{field}: {err}");
        }
    }

    #[test]
    fn struct_numbers_become_ints_when_integral() {
        assert_eq!(number(1.0), Some(Json::Int(1)));
        assert_eq!(number(-3.0), Some(Json::Int(-3)));
        assert_eq!(number(1.5), Some(Json::Float(1.5)));
        assert_eq!(number(1e300), Some(Json::Float(1e300)));
        assert_eq!(number(f64::NAN), None);
    }
}
