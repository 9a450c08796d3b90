//! The gate every call passes, whatever front end it came through: who is
//! calling (as the transport proved it), is the request well formed (every
//! field the policy or the audit sees is validated and bounded first), may
//! they (policy and rate limit), then the handler, then one audit event.
//!
//! Transport-neutral: no tonic or HTTP type appears here. A front end (the
//! gRPC edge in `grpc/guard.rs`; later the operator console) supplies the
//! caller, the request and a [`Refusals`] table that turns an [`Error`] into
//! its own refusal (a gRPC status) and the status name the audit records.
//!
//! **Invariants:** no handler runs before the policy allows it, and no
//! answer leaves before the audit trail has recorded it (a required sink
//! that cannot record turns the answer into a refusal: UNAVAILABLE). The
//! policy and the audit judge the *checked* request, the one the handler
//! will act on (for a mint: the grants of the token that will be signed),
//! and that action is derived in one place per RPC ([`Checked::action`]).
//! A mutation records its intent before the handler runs.

use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::audit::{AuditEvent, AuditTrail, Decision, cap};
use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::policy::{Action, PolicyEngine, Rpc};

/// A request as it arrives: which RPC, what to audit if it is refused
/// before it is checked, and how to check it.
pub(crate) trait Describe: Sized {
    /// The RPC.
    const RPC: Rpc;
    /// The request once every field the policy and audit see is valid.
    type Checked: Checked;
    /// The credential and minted identity the request names, as sent (the
    /// audit caps them when the request turns out invalid).
    fn named(&self) -> (&str, Option<&str>) {
        ("", None)
    }
    /// Validates and bounds the request: an invalid field names the field.
    fn check(self) -> Result<Self::Checked>;
}

/// A checked request, as the policy and the audit see it.
pub(crate) trait Checked: Send {
    /// The action, derived from exactly what the handler will act on.
    fn action(&self) -> Action<'_>;
}

/// What the audit event records about a successful response.
pub(crate) trait Outcome {
    /// Fills `jti` and `expires_at` where the response has them.
    fn fill(&self, _event: &mut AuditEvent) {}
}

/// How a front end refuses: its refusal for an error, with the status name
/// the audit event and the metrics record (`PERMISSION_DENIED`, ...) and the
/// message the caller sees. An internal error is logged once, under
/// `request_id`, by the front end's table.
pub(crate) trait Refusals {
    /// What the front end answers instead of a response.
    type Refusal;
    /// The refusal for `err`, its status name and its message.
    fn refuse(err: Error, request_id: &str) -> (Self::Refusal, &'static str, String);
}

/// What the gate consults: the policy and the audit trail.
#[derive(Clone, Copy)]
pub(crate) struct Gate<'a> {
    /// Who may do what.
    pub policy: &'a PolicyEngine,
    /// Where each decision is recorded.
    pub audit: &'a AuditTrail,
}

impl Gate<'_> {
    /// Runs `handle` for `request` from `caller` under policy and audit.
    pub(crate) async fn pass<F, Req, Resp, Fut>(
        self,
        caller: Arc<Caller>,
        request: Req,
        handle: impl FnOnce(Req::Checked, Arc<Caller>) -> Fut,
    ) -> std::result::Result<Resp, F::Refusal>
    where
        F: Refusals,
        Req: Describe,
        Resp: Outcome,
        Fut: Future<Output = Result<Resp>>,
    {
        let started = Instant::now();
        let rpc = Req::RPC;
        let (credential, identity) = request.named();
        let mut event = AuditEvent {
            time: crate::audit::rfc3339(SystemTime::now()),
            request_id: uuid::Uuid::new_v4().to_string(),
            rpc: rpc.as_str(),
            caller: caller.principal().to_owned(),
            transport: caller.transport.as_str(),
            peer: caller.peer.clone(),
            decision: Decision::Deny,
            status: "OK",
            message: None,
            credential: (!credential.is_empty()).then(|| cap(credential)),
            grants: Vec::new(),
            identity: identity.map(cap),
            ttl_seconds: None,
            jti: None,
            expires_at: None,
            duration_us: 0,
            phase: None,
        };
        let result = match self.admit(&caller, request, &mut event) {
            Err(refused) => Err(refused),
            // A mutation records its intent first: unaudited, nothing changes.
            Ok(checked) => match self.audit.record_intent(&event).await {
                Ok(()) => handle(checked, Arc::clone(&caller)).await,
                Err(unaudited) => Err(unaudited),
            },
        };
        let answer = match result {
            Ok(response) => {
                response.fill(&mut event);
                Ok(response)
            }
            Err(err) => {
                let (refusal, status, message) = F::refuse(err, &event.request_id);
                event.status = status;
                event.message = Some(cap(&message));
                Err(refusal)
            }
        };
        event.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let status_name = event.status;
        let request_id = event.request_id.clone();
        if self.audit.is_enabled()
            && let Err(unaudited) = self.audit.record(event).await
        {
            crate::telemetry::call(rpc.as_str(), "UNAVAILABLE")
                .requests
                .increment(1);
            return Err(F::refuse(unaudited, &request_id).0);
        }
        let recorded = crate::telemetry::call(rpc.as_str(), status_name);
        recorded.requests.increment(1);
        recorded.duration.record(started.elapsed().as_secs_f64());
        answer
    }

    /// The caller's credentials, then the request's fields, then the policy;
    /// fills what the audit event records of the checked request.
    fn admit<Req: Describe>(
        self,
        caller: &Caller,
        request: Req,
        event: &mut AuditEvent,
    ) -> Result<Req::Checked> {
        let refused = |err: Error| {
            metrics::counter!("twilio_broker_policy_denials_total", "rpc" => Req::RPC.as_str())
                .increment(1);
            self.policy.charge_refusal(caller).unwrap_or(err)
        };
        if let Some(reason) = &caller.refused {
            return Err(refused(Error::CertificateRefused {
                detail: reason.clone(),
            }));
        }
        let checked = request.check().map_err(refused)?;
        let action = checked.action();
        event.credential = action.credential.map(cap);
        event.identity = action.identity.map(cap);
        event.grants = action.grants.iter().map(|g| g.as_str()).collect();
        event.ttl_seconds = action.ttl_seconds;
        match self.policy.authorize(caller, &action) {
            Ok(()) => {
                event.decision = Decision::Allow;
                drop(action);
                Ok(checked)
            }
            Err(denied) => {
                metrics::counter!("twilio_broker_policy_denials_total", "rpc" => Req::RPC.as_str())
                    .increment(1);
                Err(denied)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::audit::{AuditError, AuditSink, SinkOptions};
    use crate::caller::{Identity, Source, Transport};

    /// A front end that is not gRPC: refusals are plain text.
    struct Text;

    impl Refusals for Text {
        type Refusal = String;
        fn refuse(err: Error, _request_id: &str) -> (String, &'static str, String) {
            let message = err.to_string();
            (format!("refused: {message}"), "REFUSED", message)
        }
    }

    /// A request naming a credential, checked for syntax.
    struct Ask(&'static str);
    struct Asked(&'static str);

    impl Checked for Asked {
        fn action(&self) -> Action<'_> {
            Action::new(Rpc::GetBearer).credential(self.0)
        }
    }

    impl Describe for Ask {
        const RPC: Rpc = Rpc::GetBearer;
        type Checked = Asked;
        fn named(&self) -> (&str, Option<&str>) {
            (self.0, None)
        }
        fn check(self) -> Result<Asked> {
            crate::credential::check_name("credential", self.0)?;
            Ok(Asked(self.0))
        }
    }

    impl Outcome for u32 {}

    /// Remembers every event it records.
    #[derive(Default)]
    struct Memory(Mutex<Vec<serde_json::Value>>);

    #[async_trait::async_trait]
    impl AuditSink for Arc<Memory> {
        fn name(&self) -> &str {
            "memory"
        }
        async fn record(&self, batch: &[Arc<[u8]>]) -> std::result::Result<(), AuditError> {
            let mut events = self.0.lock().expect("events");
            for line in batch {
                events.push(serde_json::from_slice(line).expect("an event is JSON"));
            }
            Ok(())
        }
        async fn flush(&self) -> std::result::Result<(), AuditError> {
            Ok(())
        }
    }

    fn caller() -> Arc<Caller> {
        Arc::new(Caller::new(
            Transport::Plaintext,
            Identity::Anonymous,
            "127.0.0.1:1".into(),
            Source::Unknown,
        ))
    }

    /// An HTTP front end (the planned console) reuses the gate without a
    /// tonic type: the policy decides, the handler runs only when allowed,
    /// and every call, allowed or refused, is audited in the front end's
    /// status words.
    #[tokio::test]
    async fn a_front_end_without_grpc_gets_policy_handler_and_audit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy_file = dir.path().join("policy.toml");
        std::fs::write(
            &policy_file,
            "version = 2\n[[rule]]\nname = \"only ok\"\ncallers = [\"anonymous\"]\n\
             rpcs = [\"GetBearer\"]\ncredentials = [\"ok\"]\n",
        )
        .expect("policy");
        let policy = PolicyEngine::load(crate::policy::Source::File(policy_file)).expect("loads");
        let memory = Arc::new(Memory::default());
        let mut audit = AuditTrail::disabled();
        audit.add(Arc::new(Arc::clone(&memory)), SinkOptions::default());
        let gate = Gate {
            policy: &policy,
            audit: &audit,
        };
        let ran = std::sync::atomic::AtomicU32::new(0);
        let handle = |_: Asked, _| async {
            ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(7u32)
        };

        assert_eq!(
            gate.pass::<Text, _, _, _>(caller(), Ask("ok"), handle)
                .await,
            Ok(7)
        );
        let denied = gate
            .pass::<Text, _, _, _>(caller(), Ask("other"), handle)
            .await
            .expect_err("the policy denies");
        assert!(denied.starts_with("refused: "), "{denied}");
        let invalid = gate
            .pass::<Text, _, _, _>(caller(), Ask("-bad"), handle)
            .await
            .expect_err("invalid");
        assert!(invalid.contains("credential"), "{invalid}");
        assert_eq!(
            ran.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the handler ran once"
        );

        let events = memory.0.lock().expect("events").clone();
        let seen: Vec<(String, String, String)> = events
            .iter()
            .map(|e| {
                (
                    e["credential"].as_str().unwrap_or_default().to_owned(),
                    e["decision"].as_str().unwrap_or_default().to_owned(),
                    e["status"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("ok".into(), "allow".into(), "OK".into()),
                ("other".into(), "deny".into(), "REFUSED".into()),
                ("-bad".into(), "deny".into(), "REFUSED".into()),
            ]
        );
    }
}
