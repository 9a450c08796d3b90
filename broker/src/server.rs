//! The running daemon: [`State`] (the edge's [`Services`] with the limits
//! and shutdown grace), and [`run`], which wires and serves every gRPC
//! service on a set of listeners until shutdown. Tests and the binary use the
//! same function: there is no test-only path.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use twilio_broker_api::v1::admin_server::AdminServer;
use twilio_broker_api::v1::broker_server::BrokerServer;

use crate::audit::AuditTrail;
use crate::bearer::Bearers;
use crate::grpc::{AdminApi, BrokerApi, Services};
use crate::policy::PolicyEngine;
use crate::store::{Store, Vault};
use crate::transport::{self, ActivityLayer, Bound, Limits};

/// What [`run`] serves: the handlers' [`Services`] and how to serve them.
/// Nothing in it is reachable from outside but through the methods below.
pub struct State {
    /// What the RPC handlers share (the edge owns it).
    services: Arc<Services>,
    /// Connection and HTTP/2 limits (`[limits]`).
    limits: Limits,
    /// How long the daemon keeps serving, health NOT_SERVING, after a
    /// shutdown is requested, so load balancers see it leave before new
    /// calls are refused (`shutdown_grace_seconds`).
    shutdown_grace: Duration,
    /// The store under the vault, probed by the health watcher (the vault
    /// answers reads from memory, so only a probe notices it is gone).
    /// None: nothing to probe.
    store: Option<Arc<dyn Store>>,
}

impl State {
    /// State over an open vault, a policy, an audit trail and the bearer cache.
    pub fn new(
        vault: Arc<Vault>,
        policy: PolicyEngine,
        audit: AuditTrail,
        bearer: Bearers,
    ) -> Self {
        State {
            services: Arc::new(Services::new(vault, policy, audit, bearer)),
            limits: Limits::default(),
            shutdown_grace: Duration::ZERO,
            store: None,
        }
    }

    /// The same state with the store the health watcher probes.
    pub fn with_store_probe(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The same state with another shutdown grace period.
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The same state with rotation wired to Twilio's REST hosts; resumes
    /// unfinished rotations (call once, inside the runtime, before serving).
    pub fn with_twilio(
        mut self,
        endpoints: crate::twilio_api::Endpoints,
        rotation: crate::rotation::RotationSettings,
    ) -> anyhow::Result<Self> {
        let services = Arc::get_mut(&mut self.services)
            .ok_or_else(|| anyhow::anyhow!("with_twilio must be called before serving"))?;
        let completions = services.with_twilio(endpoints, rotation)?;
        tokio::spawn(Services::record_completions(
            Arc::downgrade(&self.services),
            completions,
        ));
        Ok(self)
    }

    /// The same state with the operator console's logins (OpenConsole);
    /// call before serving.
    pub(crate) fn with_console(mut self, console: &crate::console::Bound) -> anyhow::Result<Self> {
        let services = Arc::get_mut(&mut self.services)
            .ok_or_else(|| anyhow::anyhow!("with_console must be called before serving"))?;
        services.with_console(console.sessions());
        Ok(self)
    }

    /// The same state with other connection limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The policy engine (reloaded on SIGHUP, swept of idle callers).
    pub fn policy(&self) -> &PolicyEngine {
        self.services.policy()
    }

    /// The audit trail (reopened on SIGHUP).
    pub fn audit(&self) -> &AuditTrail {
        self.services.audit()
    }
}

/// Serves the operator console on `console` over the same services as the
/// gRPC API, until the returned task is aborted.
pub(crate) fn spawn_console(
    console: crate::console::Bound,
    state: &State,
) -> tokio::task::JoinHandle<()> {
    let backend: Arc<dyn crate::console::Backend> = state.services.clone();
    tokio::spawn(crate::console::serve(console, backend))
}

/// tonic learns each connection's caller through `Connected`. The impl
/// lives here, at the wiring, so that `transport/` never names tonic.
impl tonic::transport::server::Connected for transport::Conn {
    type ConnectInfo = transport::PeerInfo;
    fn connect_info(&self) -> transport::PeerInfo {
        self.peer().clone()
    }
}

/// How long in-flight calls may take to finish once new calls are refused.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How often the health watcher probes the store, and retries required
/// audit sinks while they fail.
pub const HEALTH_PROBE: Duration = Duration::from_secs(1);
/// Longest a store probe may take before the store counts as unreachable.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The key the store probe reads. Never written: credential keys are keyed
/// hashes, so it cannot collide with one.
const STORE_PROBE_KEY: &str = "health-probe";

/// The one writer of health statuses after start-up.
///
/// **Invariant:** once draining, health never turns SERVING again: the
/// watcher and the shutdown both write under `draining`'s lock, and the
/// watcher writes only while it is false.
struct HealthGate {
    reporter: HealthReporter,
    draining: tokio::sync::Mutex<bool>,
}

impl HealthGate {
    /// Sets overall and per-service health; false once draining.
    async fn set(&self, serving: bool) -> bool {
        let draining = self.draining.lock().await;
        if *draining {
            return false;
        }
        self.write(serving).await;
        true
    }

    /// NOT_SERVING for good (a drain).
    async fn drain(&self) {
        let mut draining = self.draining.lock().await;
        *draining = true;
        self.write(false).await;
    }

    async fn write(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        if serving {
            self.reporter.set_serving::<BrokerServer<BrokerApi>>().await;
            self.reporter.set_serving::<AdminServer<AdminApi>>().await;
        } else {
            self.reporter
                .set_not_serving::<BrokerServer<BrokerApi>>()
                .await;
            self.reporter
                .set_not_serving::<AdminServer<AdminApi>>()
                .await;
        }
        metrics::gauge!("twilio_broker_serving").set(if serving { 1.0 } else { 0.0 });
    }
}

/// Why the broker cannot serve now: a required audit sink that does not
/// record, a store that does not answer. Empty when it can.
async fn failing_dependencies(state: &State, audit_recording: bool) -> Vec<String> {
    let mut why = Vec::new();
    if !audit_recording && let Err(reason) = state.audit().probe().await {
        why.push(reason);
    }
    if let Some(store) = &state.store {
        match tokio::time::timeout(STORE_PROBE_TIMEOUT, store.get(STORE_PROBE_KEY)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => why.push(format!("the store is unreachable: {err}")),
            Err(_) => why.push(format!(
                "the store did not answer within {} s",
                STORE_PROBE_TIMEOUT.as_secs()
            )),
        }
    }
    why
}

/// Keeps health in step with the dependencies: NOT_SERVING (overall and per
/// service) from the moment a required audit sink fails to record (the
/// trail's signal, at once) or a store probe fails (every [`HEALTH_PROBE`]),
/// SERVING again once probes pass. Ends at the drain.
async fn watch_dependencies(state: Arc<State>, gate: Arc<HealthGate>) {
    let mut recording = state.audit().recording();
    let mut every = tokio::time::interval(HEALTH_PROBE);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut serving = true;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            Ok(()) = recording.changed() => {}
        }
        let audit_recording = *recording.borrow_and_update();
        let why = failing_dependencies(&state, audit_recording).await;
        let healthy = why.is_empty();
        if healthy == serving {
            continue;
        }
        if !gate.set(healthy).await {
            return;
        }
        serving = healthy;
        if healthy {
            tracing::info!("dependencies recovered; health is SERVING again");
        } else {
            tracing::error!(reasons = %why.join("; "), "a dependency failed; health is NOT_SERVING");
        }
    }
}

/// Serves Broker, Admin, health and reflection on every listener until
/// `shutdown` resolves. Then: health turns NOT_SERVING (overall and per
/// service) and systemd hears STOPPING=1 at once; calls are still served for
/// [`State::shutdown_grace`]; then new calls are refused and in-flight calls
/// drain for at most [`SHUTDOWN_GRACE`].
pub async fn run(
    listeners: Vec<Bound>,
    state: Arc<State>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let gate = Arc::new(HealthGate {
        reporter: health,
        draining: tokio::sync::Mutex::new(false),
    });
    gate.write(true).await;
    let watcher = tokio::spawn(watch_dependencies(Arc::clone(&state), Arc::clone(&gate)));

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(twilio_broker_api::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc.ErrorInfo/RetryInfo, so grpcurl can print error details.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };

    // Graceful shutdown waits for clients to close their connections; a
    // client that never does must not keep the daemon alive.
    let requested = Arc::new(tokio::sync::Notify::new());
    let shutdown = {
        let requested = Arc::clone(&requested);
        let grace = state.shutdown_grace;
        let gate = Arc::clone(&gate);
        async move {
            shutdown.await;
            crate::notify::stopping();
            gate.drain().await;
            if !grace.is_zero() {
                tracing::info!(
                    grace_seconds = grace.as_secs_f64(),
                    "health is NOT_SERVING; still answering calls for the grace period"
                );
                tokio::time::sleep(grace).await;
            }
            requested.notify_one();
        }
    };
    let limits = state.limits;
    let keepalive_timeout = Duration::from_secs(limits.keepalive_timeout_seconds);
    let serve = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_pending_accept_reset_streams(Some(limits.max_pending_reset_streams))
        .http2_max_local_error_reset_streams(Some(limits.max_local_error_reset_streams))
        .http2_keepalive_interval(limits.keepalive_interval())
        .http2_keepalive_timeout(Some(keepalive_timeout))
        .http2_max_header_list_size(16 * 1024)
        .layer(ActivityLayer)
        .add_service(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(
            BrokerServer::new(BrokerApi::new(Arc::clone(&state.services)))
                .max_decoding_message_size(limits.max_request_bytes),
        )
        .add_service(
            AdminServer::new(AdminApi::new(Arc::clone(&state.services)))
                .max_decoding_message_size(limits.max_request_bytes),
        )
        .serve_with_incoming_shutdown(transport::incoming(listeners, limits), shutdown);
    tokio::select! {
        served = serve => served?,
        () = async {
            requested.notified().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!(
                grace_seconds = SHUTDOWN_GRACE.as_secs(),
                "in-flight calls or idle clients did not finish within the grace period; stopping anyway"
            );
        }
    }
    watcher.abort();
    state.audit().flush().await;
    Ok(())
}
