//! The ceiling: a do-nothing tonic service with the Broker's interface. Each
//! RPC answers a canned reply of the same shape as the broker's, so the
//! difference to the broker is the broker's own work.

use std::net::SocketAddr;

use clap::Parser;
use tonic::{Request, Response, Status};
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::broker_server::{Broker, BrokerServer};

#[derive(Parser)]
struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

struct Ceiling;

#[tonic::async_trait]
impl Broker for Ceiling {
    async fn get_bearer(
        &self,
        _: Request<pb::GetBearerRequest>,
    ) -> Result<Response<pb::GetBearerResponse>, Status> {
        Ok(Response::new(pb::GetBearerResponse {
            access_token: "x".repeat(400),
            token_type: "Bearer".into(),
            expires_at: Some(prost_types::Timestamp {
                seconds: 1_700_003_600,
                nanos: 0,
            }),
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        }))
    }
    async fn mint_access_token(
        &self,
        _: Request<pb::MintAccessTokenRequest>,
    ) -> Result<Response<pb::MintAccessTokenResponse>, Status> {
        Ok(Response::new(pb::MintAccessTokenResponse {
            token: "x".repeat(440),
            expires_at: Some(prost_types::Timestamp {
                seconds: 1_700_003_600,
                nanos: 0,
            }),
            jti: "SKfedcba9876543210fedcba9876543210-1700000000-0123456789abcdef".into(),
        }))
    }
    async fn recommend(
        &self,
        _: Request<pb::RecommendRequest>,
    ) -> Result<Response<pb::RecommendResponse>, Status> {
        Ok(Response::new(pb::RecommendResponse::default()))
    }
    async fn validate_webhook(
        &self,
        _: Request<pb::ValidateWebhookRequest>,
    ) -> Result<Response<pb::ValidateWebhookResponse>, Status> {
        Ok(Response::new(pb::ValidateWebhookResponse {
            valid: true,
            reason: String::new(),
        }))
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads);
    }
    runtime.enable_all().build()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("ceiling listening on {}", listener.local_addr()?);
        tonic::transport::Server::builder()
            .add_service(BrokerServer::new(Ceiling))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            )
            .await?;
        Ok(())
    })
}
