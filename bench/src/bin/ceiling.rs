//! The ceiling: a do-nothing tonic service with the Broker's interface. Each
//! RPC answers a canned reply of the same shape as the broker's, so the
//! difference to the broker is the broker's own work.

use std::net::SocketAddr;

use clap::Parser;
use prost::Message as _;
use tonic::{Request, Response, Status};
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::broker_server::{Broker, BrokerServer};

/// The daemon's allocator (see `broker/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Size of the encoded GetBearer reply (default: a 400-byte token).
    #[arg(long)]
    bearer_reply_bytes: Option<usize>,
    /// Size of the encoded MintAccessToken reply (default: a 440-byte token).
    #[arg(long)]
    mint_reply_bytes: Option<usize>,
}

/// The canned replies, built once.
struct Ceiling {
    bearer: pb::GetBearerResponse,
    mint: pb::MintAccessTokenResponse,
}

/// Pads `token` until `encoded()` is exactly `target` bytes (or as close as
/// the length prefix allows).
fn pad(target: Option<usize>, token: &mut String, encoded: impl Fn(&String) -> usize) {
    let Some(target) = target else { return };
    token.clear();
    while encoded(token) < target {
        token.push('x');
    }
}

impl Ceiling {
    fn new(args: &Args) -> Self {
        let mut bearer = pb::GetBearerResponse {
            access_token: "x".repeat(400),
            token_type: "Bearer".into(),
            expires_at: Some(prost_types::Timestamp {
                seconds: 1_700_003_600,
                nanos: 0,
            }),
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        };
        let mut token = std::mem::take(&mut bearer.access_token);
        pad(args.bearer_reply_bytes, &mut token, |t| {
            pb::GetBearerResponse {
                access_token: t.clone(),
                ..bearer.clone()
            }
            .encoded_len()
        });
        bearer.access_token = token;
        let mut mint = pb::MintAccessTokenResponse {
            token: "x".repeat(440),
            expires_at: Some(prost_types::Timestamp {
                seconds: 1_700_003_600,
                nanos: 0,
            }),
            jti: "SKfedcba9876543210fedcba9876543210-1700000000-0123456789abcdef".into(),
        };
        let mut token = std::mem::take(&mut mint.token);
        pad(args.mint_reply_bytes, &mut token, |t| {
            pb::MintAccessTokenResponse {
                token: t.clone(),
                ..mint.clone()
            }
            .encoded_len()
        });
        mint.token = token;
        Ceiling { bearer, mint }
    }
}

#[tonic::async_trait]
impl Broker for Ceiling {
    async fn get_bearer(
        &self,
        _: Request<pb::GetBearerRequest>,
    ) -> Result<Response<pb::GetBearerResponse>, Status> {
        Ok(Response::new(self.bearer.clone()))
    }
    async fn mint_access_token(
        &self,
        _: Request<pb::MintAccessTokenRequest>,
    ) -> Result<Response<pb::MintAccessTokenResponse>, Status> {
        Ok(Response::new(self.mint.clone()))
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
            ..Default::default()
        }))
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ceiling = Ceiling::new(&args);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads);
    }
    runtime.enable_all().build()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("ceiling listening on {}", listener.local_addr()?);
        tonic::transport::Server::builder()
            .add_service(BrokerServer::new(ceiling))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            )
            .await?;
        Ok(())
    })
}
