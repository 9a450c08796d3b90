//! The gRPC side of the [`crate::gate`]: every RPC passes through
//! [`guarded`], which takes the caller from the connection, runs the
//! transport-neutral gate (identity, policy, handler, audit) and answers
//! refusals as gRPC statuses through the one table (`status.rs`). Here too:
//! how each request message is checked ([`Describe`] for the generated
//! types) and what the audit records of each response ([`Outcome`]).

use std::future::Future;
use std::sync::Arc;

use tonic::{Request, Response, Status};
use twilio_broker_api::v1 as pb;

use super::Services;
use super::mint::CheckedMint;
use super::status::{code_name, to_status};
use crate::audit::AuditEvent;
use crate::caller::{Caller, Identity, Source, Transport};
use crate::credential;
use crate::error::{Error, Result};
use crate::gate::Refusals;
pub(super) use crate::gate::{Checked, Describe, Outcome};
use crate::mint;
use crate::policy::{Action, GrantKind, Rpc};
use crate::transport::PeerInfo;

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

/// The gRPC front end's refusals: the one status table (`status.rs`).
pub(super) struct Grpc;

impl Refusals for Grpc {
    type Refusal = Status;
    fn refuse(err: Error, request_id: &str) -> (Status, &'static str, String) {
        let status = to_status(err, request_id);
        let name = code_name(status.code());
        let message = status.message().to_owned();
        (status, name, message)
    }
}

/// Runs `handle` for a gRPC `request` through the [`crate::gate`]: the
/// caller from the connection, refusals as gRPC statuses.
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
    let caller = caller_of(&request);
    state
        .gate()
        .pass::<Grpc, _, _, _>(caller, request.into_inner(), handle)
        .await
        .map(Response::new)
}

/// A request whose only policy-relevant field is the credential it names,
/// checked for syntax (empty allowed where the RPC allows it).
pub(crate) struct Named<T> {
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

impl Describe for pb::BackupRequest {
    const RPC: Rpc = Rpc::Backup;
    type Checked = Named<Self>;
    fn check(self) -> Result<Self::Checked> {
        named(Self::RPC, self, "", |_| "", false)
    }
}

impl Describe for pb::ReloadPolicyRequest {
    const RPC: Rpc = Rpc::ReloadPolicy;
    type Checked = Named<Self>;
    fn check(self) -> Result<Self::Checked> {
        named(Self::RPC, self, "", |_| "", false)
    }
}

impl Describe for pb::OpenConsoleRequest {
    const RPC: Rpc = Rpc::OpenConsole;
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
/// The link's expiry is audited; the link itself (a token) never is.
impl Outcome for pb::OpenConsoleResponse {
    fn fill(&self, event: &mut AuditEvent) {
        expiry(event, self.expires_at.as_ref());
    }
}
