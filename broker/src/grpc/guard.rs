//! Every RPC passes through [`guarded`]: who is calling (from the transport),
//! may they (policy and rate limit), then the handler, then one audit event.
//!
//! **Invariant:** no handler runs before the policy allows it, and no answer
//! leaves before the audit trail has recorded it (a required sink that
//! cannot record turns the answer into UNAVAILABLE).

use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tonic::{Request, Response, Status};
use twilio_broker_api::v1 as pb;

use super::status::{code_name, to_status};
use crate::audit::{AuditEvent, Decision};
use crate::caller::{Caller, Transport};
use crate::policy::{Action, GrantKind, Rpc};
use crate::server::State;
use crate::transport::PeerInfo;

/// What the policy needs to know about a request.
pub(super) trait Describe {
    /// The RPC.
    const RPC: Rpc;
    /// The action, borrowing from the request.
    fn action(&self) -> Action<'_>;
}

/// What the audit event records about a successful response.
pub(super) trait Outcome {
    /// Fills `jti` and `expires_at` where the response has them.
    fn fill(&self, _event: &mut AuditEvent) {}
}

/// The caller of a request: set by our transports; a connection accepted
/// elsewhere (an in-process test server) counts as anonymous plaintext.
fn caller_of<T>(request: &Request<T>) -> Arc<Caller> {
    if let Some(PeerInfo(caller)) = request.extensions().get::<PeerInfo>() {
        return Arc::clone(caller);
    }
    Arc::new(Caller::new(
        Transport::Plaintext,
        None,
        request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
    ))
}

/// Runs `handle` for `request` under policy and audit.
pub(super) async fn guarded<Req, Resp, Fut>(
    state: &State,
    request: Request<Req>,
    handle: impl FnOnce(Req) -> Fut,
) -> Result<Response<Resp>, Status>
where
    Req: Describe,
    Resp: Outcome,
    Fut: Future<Output = crate::error::Result<Resp>>,
{
    let started = Instant::now();
    let caller = caller_of(&request);
    let request = request.into_inner();
    let request_id = uuid::Uuid::new_v4().to_string();
    let rpc = Req::RPC;
    let action = request.action();
    let mut event = AuditEvent {
        time: crate::audit::rfc3339(SystemTime::now()),
        request_id,
        rpc: rpc.as_str(),
        caller: caller.principal().to_owned(),
        transport: caller.transport.as_str(),
        peer: caller.peer.clone(),
        decision: Decision::Allow,
        status: "OK",
        message: None,
        credential: action.credential.map(str::to_owned),
        grants: action.grants.iter().map(|g| g.as_str()).collect(),
        identity: action.identity.map(str::to_owned),
        ttl_seconds: action.ttl_seconds,
        jti: None,
        expires_at: None,
        duration_us: 0,
        phase: None,
    };
    let decision = state.policy.authorize(&caller, &action);
    drop(action);

    let result = match decision {
        Err(denied) => {
            event.decision = Decision::Deny;
            metrics::counter!("twilio_broker_policy_denials_total", "rpc" => rpc.as_str())
                .increment(1);
            Err(denied)
        }
        // A mutation records its intent first: unaudited, nothing changes.
        Ok(()) => match state.audit.record_intent(&event).await {
            Ok(()) => handle(request).await,
            Err(unaudited) => Err(unaudited),
        },
    };
    let answer = match result {
        Ok(response) => {
            response.fill(&mut event);
            Ok(response)
        }
        Err(err) => {
            let status = to_status(err, &event.request_id);
            event.status = code_name(status.code());
            event.message = Some(status.message().to_owned());
            Err(status)
        }
    };
    event.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let status_name = event.status;
    if state.audit.is_enabled()
        && let Err(unaudited) = state.audit.record(event).await
    {
        metrics::counter!("twilio_broker_requests_total", "rpc" => rpc.as_str(), "code" => "UNAVAILABLE")
            .increment(1);
        return Err(Status::from(unaudited));
    }
    metrics::counter!("twilio_broker_requests_total", "rpc" => rpc.as_str(), "code" => status_name)
        .increment(1);
    answer.map(Response::new)
}

fn grants_of(request: &pb::MintAccessTokenRequest) -> Vec<GrantKind> {
    let mut grants = Vec::new();
    if request.voice.is_some() {
        grants.push(GrantKind::Voice);
    }
    if request.video.is_some() {
        grants.push(GrantKind::Video);
    }
    if request.chat.is_some() {
        grants.push(GrantKind::Chat);
    }
    if request.sync.is_some() {
        grants.push(GrantKind::Sync);
    }
    if request.task_router.is_some() {
        grants.push(GrantKind::TaskRouter);
    }
    if request.playback.is_some() {
        grants.push(GrantKind::Playback);
    }
    grants
}

impl Describe for pb::GetBearerRequest {
    const RPC: Rpc = Rpc::GetBearer;
    fn action(&self) -> Action<'_> {
        Action::new(Self::RPC).credential(&self.credential)
    }
}

impl Describe for pb::MintAccessTokenRequest {
    const RPC: Rpc = Rpc::MintAccessToken;
    fn action(&self) -> Action<'_> {
        let mut action = Action::new(Self::RPC).credential(&self.credential);
        action.grants = grants_of(self);
        action.identity = Some(self.identity.as_str());
        action.ttl_seconds = Some(if self.ttl_seconds == 0 {
            3600
        } else {
            self.ttl_seconds
        });
        action
    }
}

impl Describe for pb::RecommendRequest {
    const RPC: Rpc = Rpc::Recommend;
    fn action(&self) -> Action<'_> {
        Action::new(Self::RPC).credential(&self.credential)
    }
}

impl Describe for pb::ValidateWebhookRequest {
    const RPC: Rpc = Rpc::ValidateWebhook;
    fn action(&self) -> Action<'_> {
        Action::new(Self::RPC).credential(&self.credential)
    }
}

impl Describe for pb::PutCredentialRequest {
    const RPC: Rpc = Rpc::PutCredential;
    fn action(&self) -> Action<'_> {
        Action::new(Self::RPC).credential(&self.name)
    }
}

impl Describe for pb::GetCredentialRequest {
    const RPC: Rpc = Rpc::GetCredential;
    fn action(&self) -> Action<'_> {
        Action::new(Self::RPC).credential(&self.name)
    }
}

impl Describe for pb::DeleteCredentialRequest {
    const RPC: Rpc = Rpc::DeleteCredential;
    fn action(&self) -> Action<'_> {
        Action::new(Self::RPC).credential(&self.name)
    }
}

impl Describe for pb::ListCredentialsRequest {
    const RPC: Rpc = Rpc::ListCredentials;
    fn action(&self) -> Action<'_> {
        Action::new(Self::RPC)
    }
}

impl Describe for pb::ReloadPolicyRequest {
    const RPC: Rpc = Rpc::ReloadPolicy;
    fn action(&self) -> Action<'_> {
        Action::new(Self::RPC)
    }
}

fn expiry(event: &mut AuditEvent, expires_at: Option<&prost_types::Timestamp>) {
    event.expires_at = expires_at.map(ToString::to_string);
}

impl Outcome for pb::GetBearerResponse {
    fn fill(&self, event: &mut AuditEvent) {
        expiry(event, self.expires_at.as_ref());
    }
}

impl Outcome for pb::MintAccessTokenResponse {
    fn fill(&self, event: &mut AuditEvent) {
        event.jti = Some(self.jti.clone());
        expiry(event, self.expires_at.as_ref());
    }
}

impl Outcome for pb::RecommendResponse {}
impl Outcome for pb::ValidateWebhookResponse {}
impl Outcome for pb::PutCredentialResponse {}
impl Outcome for pb::GetCredentialResponse {}
impl Outcome for pb::ListCredentialsResponse {}
impl Outcome for pb::DeleteCredentialResponse {}
impl Outcome for pb::ReloadPolicyResponse {}
