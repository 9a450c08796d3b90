//! The gRPC edge: the only module that sees tonic and generated types.
//!
//! Each RPC converts its request into domain values (naming the bad field on
//! failure), calls a domain module, and converts the result back. Errors
//! become statuses in exactly one place, [`status`].

mod admin;
mod bearer;
mod broker;
pub(crate) mod convert;
mod guard;
pub(crate) mod mint;
pub(crate) mod recommend;
pub mod status;
mod webhook;

pub use admin::AdminApi;
pub use broker::BrokerApi;

use std::sync::Arc;

use crate::audit::AuditTrail;
use crate::bearer::Bearers;
use crate::listing::PageTokens;
use crate::mint::Minter;
use crate::policy::PolicyEngine;
use crate::rotation::{Completion, RotationSettings, Rotator};
use crate::store::Vault;
use crate::twilio_api::Endpoints;

/// What the RPC handlers share: the domain services a call reaches. The edge
/// owns it, so handlers import nothing from `server.rs` (which only wires
/// listeners, limits and shutdown around it).
///
/// **Invariant:** the fields are private to `grpc/`: outside the edge, only
/// [`Services::policy`] and [`Services::audit`] are reachable (SIGHUP
/// reload, idle-caller sweep, the final audit flush), never the vault; the
/// other edge, the operator console, reaches the rest through
/// [`crate::console::Backend`] (read-only views, each behind the gate).
pub struct Services {
    /// The credentials.
    vault: Arc<Vault>,
    /// Who may do what.
    policy: PolicyEngine,
    /// Where each decision is recorded.
    audit: AuditTrail,
    /// Signs Access Tokens; its `jti` counter is the only shared state (atomic).
    minter: Minter,
    /// The OAuth bearer token cache over `vault` (GetBearer).
    bearer: Bearers,
    /// Signs and checks ListCredentials page tokens.
    page_tokens: PageTokens,
    /// Rotates API keys through Twilio (RotateCredential) and checks
    /// managers on PutCredential; None until [`Services::with_twilio`].
    rotator: Option<Arc<Rotator>>,
    /// `[rotation]`: review age warnings, Auth Token rotation timing.
    rotation: RotationSettings,
    /// The operator console's logins (OpenConsole); None when it is off.
    console: Option<Arc<crate::console::Sessions>>,
}

impl Services {
    /// The gate every call passes: the policy and the audit trail.
    pub(crate) fn gate(&self) -> crate::gate::Gate<'_> {
        crate::gate::Gate {
            policy: &self.policy,
            audit: &self.audit,
        }
    }

    /// The services over an open vault, a policy, an audit trail and the
    /// bearer cache.
    pub fn new(
        vault: Arc<Vault>,
        policy: PolicyEngine,
        audit: AuditTrail,
        bearer: Bearers,
    ) -> Self {
        Services {
            vault,
            policy,
            audit,
            minter: Minter::new(),
            bearer,
            page_tokens: PageTokens::default(),
            rotator: None,
            rotation: RotationSettings::default(),
            console: None,
        }
    }

    /// Turns on OpenConsole: login links for the console these sessions
    /// belong to.
    pub(crate) fn with_console(&mut self, sessions: Arc<crate::console::Sessions>) {
        self.console = Some(sessions);
    }

    /// Wires rotation to Twilio's REST hosts `endpoints` and resumes every
    /// unfinished rotation (start-up recovery). Needs a tokio runtime.
    /// Returns the rotations' off-request completions, for
    /// [`Services::record_completions`].
    pub fn with_twilio(
        &mut self,
        endpoints: Endpoints,
        rotation: RotationSettings,
    ) -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<Completion>> {
        self.rotation = rotation;
        let rotator = Arc::new(Rotator::new(Arc::clone(&self.vault), endpoints, rotation)?);
        let completions = rotator.completions();
        rotator.spawn_scheduler();
        let resuming = Arc::clone(&rotator);
        tokio::spawn(async move {
            let found = resuming.resume().await;
            if found > 0 {
                tracing::info!(rotations = found, "unfinished rotations resumed");
            }
        });
        self.rotator = Some(rotator);
        Ok(completions)
    }

    /// Records each off-request completion of a rotation as a
    /// RotateCredential audit event of the broker itself (caller
    /// `twilio-broker`, transport `internal`, phase `background`), until
    /// the services are dropped. Names and words only, never a secret.
    pub async fn record_completions(
        services: std::sync::Weak<Services>,
        mut completions: tokio::sync::mpsc::UnboundedReceiver<Completion>,
    ) {
        while let Some(done) = completions.recv().await {
            let Some(services) = services.upgrade() else {
                return;
            };
            let event = crate::audit::AuditEvent {
                time: crate::audit::rfc3339(std::time::SystemTime::now()),
                request_id: uuid::Uuid::new_v4().to_string(),
                rpc: crate::policy::Rpc::RotateCredential.as_str(),
                caller: "twilio-broker".into(),
                transport: "internal",
                peer: String::new(),
                decision: crate::audit::Decision::Allow,
                status: if done.ok { "OK" } else { "UNAVAILABLE" },
                message: (!done.ok).then(|| crate::audit::cap(&done.message)),
                credential: Some(crate::audit::cap(&done.credential)),
                grants: Vec::new(),
                identity: None,
                ttl_seconds: None,
                jti: None,
                expires_at: None,
                duration_us: 0,
                phase: Some("background"),
            };
            if let Err(err) = services.audit.record(event).await {
                tracing::error!(credential = %done.credential, error = %err, "the end of a rotation could not be audited");
            }
        }
    }

    /// Reviews warn about secrets stored longer than this.
    pub(crate) fn warn_key_age(&self) -> std::time::Duration {
        self.rotation.warn_age
    }

    /// The policy engine (reloaded on SIGHUP, swept of idle callers).
    pub fn policy(&self) -> &PolicyEngine {
        &self.policy
    }

    /// The audit trail (reopened on SIGHUP, flushed at shutdown).
    pub fn audit(&self) -> &AuditTrail {
        &self.audit
    }
}

/// The console's read-only view of the services.
impl crate::console::Backend for Services {
    fn gate(&self) -> crate::gate::Gate<'_> {
        Services::gate(self)
    }
    fn vault(&self) -> &Vault {
        &self.vault
    }
    fn policy(&self) -> &PolicyEngine {
        &self.policy
    }
    fn page_tokens(&self) -> &PageTokens {
        &self.page_tokens
    }
    fn bearers(&self) -> &Bearers {
        &self.bearer
    }
    fn audit(&self) -> &AuditTrail {
        &self.audit
    }
}
