//! Every RPC passes through [`guarded`]: who is calling (from the transport),
//! is the request well formed (every field the policy or the audit sees is
//! validated and bounded first), may they (policy and rate limit), then the
//! handler, then one audit event.
//!
//! **Invariants:** no handler runs before the policy allows it, and no
//! answer leaves before the audit trail has recorded it (a required sink
//! that cannot record turns the answer into UNAVAILABLE). The policy and
//! the audit judge the *checked* request, the one the handler will act on
//! (for a mint: the grants of the token that will be signed), and that
//! action is derived in one place per RPC ([`Checked::action`]).

use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tonic::{Request, Response, Status};
use twilio_broker_api::v1 as pb;

use super::Services;
use super::mint::CheckedMint;
use super::status::{code_name, to_status};
use crate::audit::{AuditEvent, Decision, cap};
use crate::caller::{Caller, Identity, Source, Transport};
use crate::credential;
use crate::error::{Error, Result};
use crate::mint;
use crate::policy::{Action, GrantKind, Rpc};
use crate::transport::PeerInfo;

/// A request as it arrives: which RPC, what to audit if it is refused
/// before it is checked, and how to check it.
pub(super) trait Describe: Sized {
    /// The RPC.
    const RPC: Rpc;
    /// The request once every field the policy and audit see is valid.
    type Checked: Checked;
    /// The credential and minted identity the request names, as sent (the
    /// audit caps them when the request turns out invalid).
    fn named(&self) -> (&str, Option<&str>) {
        ("", None)
    }
    /// Validates and bounds the request: INVALID_ARGUMENT names the field.
    fn check(self) -> Result<Self::Checked>;
}

/// A checked request, as the policy and the audit see it.
pub(super) trait Checked: Send {
    /// The action, derived from exactly what the handler will act on.
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
    if let Some(peer) = request.extensions().get::<PeerInfo>() {
        return Arc::clone(&peer.caller);
    }
    let addr = request.remote_addr();
    Arc::new(Caller::new(
        Transport::Plaintext,
        Identity::Anonymous,
        addr.map(|a| a.to_string()).unwrap_or_default(),
        addr.map_or(Source::Unknown, |a| Source::Ip(a.ip())),
    ))
}

/// Runs `handle` for `request` under policy and audit.
pub(super) async fn guarded<Req, Resp, Fut>(
    state: &Services,
    request: Request<Req>,
    handle: impl FnOnce(Req::Checked, Arc<Caller>) -> Fut,
) -> std::result::Result<Response<Resp>, Status>
where
    Req: Describe,
    Resp: Outcome,
    Fut: Future<Output = Result<Resp>>,
{
    let started = Instant::now();
    let caller = caller_of(&request);
    let request = request.into_inner();
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
    let result = match admit(state, &caller, request, &mut event) {
        Err(refused) => Err(refused),
        // A mutation records its intent first: unaudited, nothing changes.
        Ok(checked) => match state.audit.record_intent(&event).await {
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
            let status = to_status(err, &event.request_id);
            event.status = code_name(status.code());
            event.message = Some(cap(status.message()));
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
    metrics::histogram!("twilio_broker_request_duration_seconds", "rpc" => rpc.as_str(), "code" => status_name)
        .record(started.elapsed().as_secs_f64());
    answer.map(Response::new)
}

/// The caller's credentials, then the request's fields, then the policy;
/// fills what the audit event records of the checked request.
fn admit<Req: Describe>(
    state: &Services,
    caller: &Caller,
    request: Req,
    event: &mut AuditEvent,
) -> Result<Req::Checked> {
    let refused = |err: Error| {
        metrics::counter!("twilio_broker_policy_denials_total", "rpc" => Req::RPC.as_str())
            .increment(1);
        state.policy.charge_refusal(caller).unwrap_or(err)
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
    match state.policy.authorize(caller, &action) {
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

/// A request whose only policy-relevant field is the credential it names,
/// checked for syntax (empty allowed where the RPC allows it).
pub(super) struct Named<T> {
    /// The request.
    pub request: T,
    rpc: Rpc,
    credential: fn(&T) -> &str,
}

impl<T: Send> Checked for Named<T> {
    fn action(&self) -> Action<'_> {
        Action::new(self.rpc).credential((self.credential)(&self.request))
    }
}

fn named<T>(
    rpc: Rpc,
    request: T,
    field: &str,
    credential: fn(&T) -> &str,
    required: bool,
) -> Result<Named<T>> {
    let name = credential(&request);
    if required || !name.is_empty() {
        credential::check_name(field, name)?;
    }
    Ok(Named {
        request,
        rpc,
        credential,
    })
}

impl Describe for pb::GetBearerRequest {
    const RPC: Rpc = Rpc::GetBearer;
    type Checked = Named<Self>;
    fn named(&self) -> (&str, Option<&str>) {
        (&self.credential, None)
    }
    fn check(self) -> Result<Self::Checked> {
        named(Self::RPC, self, "credential", |r| &r.credential, true)
    }
}

impl Describe for pb::MintAccessTokenRequest {
    const RPC: Rpc = Rpc::MintAccessToken;
    type Checked = CheckedMint;
    fn named(&self) -> (&str, Option<&str>) {
        (&self.credential, Some(&self.identity))
    }
    fn check(self) -> Result<CheckedMint> {
        if self.credential.is_empty() {
            return Err(Error::invalid(
                "credential",
                "is required: the name of a stored Main or Standard api_key credential",
            ));
        }
        credential::check_name("credential", &self.credential)?;
        let (credential, token) = super::mint::token_request(self)?;
        token.check()?;
        Ok(CheckedMint { credential, token })
    }
}

impl Checked for CheckedMint {
    /// The grants of the token that will be signed: every grant the
    /// converted request holds (a `playback_json` is a player grant like
    /// `playback`). Destructured without `..`, so a new grant cannot be
    /// added without the policy seeing it.
    fn action(&self) -> Action<'_> {
        let mint::Grants {
            voice,
            video,
            chat,
            sync,
            task_router,
            playback,
        } = &self.token.grants;
        let grants = [
            (voice.is_some(), GrantKind::Voice),
            (video.is_some(), GrantKind::Video),
            (chat.is_some(), GrantKind::Chat),
            (sync.is_some(), GrantKind::Sync),
            (task_router.is_some(), GrantKind::TaskRouter),
            (playback.is_some(), GrantKind::Playback),
        ]
        .into_iter()
        .filter_map(|(present, kind)| present.then_some(kind))
        .collect();
        let ttl = match self.token.ttl_seconds {
            0 => mint::DEFAULT_TTL_SECONDS,
            ttl => ttl,
        };
        Action {
            grants,
            identity: Some(self.token.identity.as_str()),
            ttl_seconds: Some(ttl),
            ..Action::new(Rpc::MintAccessToken).credential(&self.credential)
        }
    }
}

impl Describe for pb::RecommendRequest {
    const RPC: Rpc = Rpc::Recommend;
    type Checked = Named<Self>;
    fn named(&self) -> (&str, Option<&str>) {
        (&self.credential, None)
    }
    fn check(self) -> Result<Self::Checked> {
        named(Self::RPC, self, "credential", |r| &r.credential, false)
    }
}

impl Describe for pb::ValidateWebhookRequest {
    const RPC: Rpc = Rpc::ValidateWebhook;
    type Checked = Named<Self>;
    fn named(&self) -> (&str, Option<&str>) {
        (&self.credential, None)
    }
    fn check(self) -> Result<Self::Checked> {
        if self.credential.is_empty() {
            return Err(Error::invalid(
                "credential",
                "is required: the name of a stored auth_token or test credential",
            ));
        }
        named(Self::RPC, self, "credential", |r| &r.credential, true)
    }
}

impl Describe for pb::PutCredentialRequest {
    const RPC: Rpc = Rpc::PutCredential;
    type Checked = Named<Self>;
    fn named(&self) -> (&str, Option<&str>) {
        (&self.name, None)
    }
    fn check(self) -> Result<Self::Checked> {
        named(Self::RPC, self, "name", |r| &r.name, true)
    }
}

impl Describe for pb::GetCredentialRequest {
    const RPC: Rpc = Rpc::GetCredential;
    type Checked = Named<Self>;
    fn named(&self) -> (&str, Option<&str>) {
        (&self.name, None)
    }
    fn check(self) -> Result<Self::Checked> {
        named(Self::RPC, self, "name", |r| &r.name, true)
    }
}

impl Describe for pb::DeleteCredentialRequest {
    const RPC: Rpc = Rpc::DeleteCredential;
    type Checked = Named<Self>;
    fn named(&self) -> (&str, Option<&str>) {
        (&self.name, None)
    }
    fn check(self) -> Result<Self::Checked> {
        named(Self::RPC, self, "name", |r| &r.name, true)
    }
}

impl Describe for pb::ListCredentialsRequest {
    const RPC: Rpc = Rpc::ListCredentials;
    type Checked = Named<Self>;
    fn check(self) -> Result<Self::Checked> {
        named(Self::RPC, self, "", |_| "", false)
    }
}

impl Describe for pb::RotateCredentialRequest {
    const RPC: Rpc = Rpc::RotateCredential;
    type Checked = Named<Self>;
    fn named(&self) -> (&str, Option<&str>) {
        (&self.name, None)
    }
    fn check(self) -> Result<Self::Checked> {
        named(Self::RPC, self, "name", |r| &r.name, true)
    }
}

impl Describe for pb::ReloadPolicyRequest {
    const RPC: Rpc = Rpc::ReloadPolicy;
    type Checked = Named<Self>;
    fn check(self) -> Result<Self::Checked> {
        named(Self::RPC, self, "", |_| "", false)
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
impl Outcome for pb::RotateCredentialResponse {}
impl Outcome for pb::GetCredentialResponse {}
impl Outcome for pb::ListCredentialsResponse {}
impl Outcome for pb::DeleteCredentialResponse {}
impl Outcome for pb::ReloadPolicyResponse {}
