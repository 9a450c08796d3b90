//! The running daemon: shared [`State`], and [`run`], which serves every gRPC
//! service on a listener until shutdown. Tests call [`run`] on port 0, the
//! binary calls it from `serve`: there is no test-only path.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use twilio_broker_api::v1::admin_server::AdminServer;
use twilio_broker_api::v1::broker_server::BrokerServer;

use crate::bearer::Bearers;
use crate::grpc::{AdminApi, BrokerApi};
use crate::store::Vault;

/// What every request handler shares.
pub struct State {
    /// The credentials.
    pub vault: Arc<Vault>,
    /// The OAuth bearer token cache over `vault` (GetBearer).
    pub bearer: Bearers,
}

impl State {
    /// State over an open vault and the bearer cache built on it.
    pub fn new(vault: Arc<Vault>, bearer: Bearers) -> Self {
        State { vault, bearer }
    }
}

/// How long in-flight calls may take to finish after shutdown is requested.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves Broker, Admin, health and reflection on `listener` until `shutdown`
/// resolves, then drains in-flight calls for at most [`SHUTDOWN_GRACE`].
pub async fn run(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<BrokerServer<BrokerApi>>().await;
    health.set_serving::<AdminServer<AdminApi>>().await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(twilio_broker_api::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };

    // Graceful shutdown waits for clients to close their connections; a
    // client that never does must not keep the daemon alive.
    let requested = Arc::new(tokio::sync::Notify::new());
    let shutdown = {
        let requested = Arc::clone(&requested);
        async move {
            shutdown.await;
            requested.notify_one();
        }
    };
    let serve = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(BrokerServer::new(BrokerApi::new(Arc::clone(&state))))
        .add_service(AdminServer::new(AdminApi::new(state)))
        // `tcp_nodelay` above applies only to listeners tonic binds itself:
        // without it on accepted sockets, Nagle's algorithm and delayed ACKs
        // stall small replies by ~40 ms.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        );
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
    Ok(())
}
