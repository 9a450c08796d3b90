//! The ceiling: the one do-nothing tonic service with the Broker interface.
//! Each RPC answers a canned reply of the same shape (and, padded, the same
//! size) as the broker's, so the difference to the broker is the broker's
//! own work. `scripts/bench` runs it as the `ceiling` binary; the benches in
//! `broker/benches` serve it in process beside the daemon with replies the
//! daemon really sent.

use prost::Message as _;
use tonic::{Request, Response, Status};
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::broker_server::{Broker, BrokerServer};

/// The canned replies, built once and cloned per call.
#[derive(Debug, Clone)]
pub struct Ceiling {
    bearer: pb::GetBearerResponse,
    mint: pb::MintAccessTokenResponse,
}

/// Pads `token` with `x` until `encoded(token)` reaches `target` bytes (or
/// just past it, where the length prefix grows).
fn pad(target: usize, token: &mut String, encoded: impl Fn(&String) -> usize) {
    token.clear();
    while encoded(token) < target {
        token.push('x');
    }
}

impl Ceiling {
    /// Replies with exactly these (for example, what the broker answered).
    pub fn new(bearer: pb::GetBearerResponse, mint: pb::MintAccessTokenResponse) -> Self {
        Ceiling { bearer, mint }
    }

    /// Replies shaped like the broker's: a 400-byte bearer token and a
    /// 440-byte Access Token, or tokens padded so that the encoded replies
    /// are `bearer_bytes` and `mint_bytes` long.
    pub fn padded(bearer_bytes: Option<usize>, mint_bytes: Option<usize>) -> Self {
        let expires_at = Some(prost_types::Timestamp {
            seconds: 1_700_003_600,
            nanos: 0,
        });
        let mut bearer = pb::GetBearerResponse {
            access_token: "x".repeat(400),
            token_type: "Bearer".into(),
            expires_at,
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        };
        if let Some(target) = bearer_bytes {
            let mut token = std::mem::take(&mut bearer.access_token);
            pad(target, &mut token, |t| {
                pb::GetBearerResponse {
                    access_token: t.clone(),
                    ..bearer.clone()
                }
                .encoded_len()
            });
            bearer.access_token = token;
        }
        let mut mint = pb::MintAccessTokenResponse {
            token: "x".repeat(440),
            expires_at,
            jti: "SKfedcba9876543210fedcba9876543210-1700000000-0123456789abcdef".into(),
        };
        if let Some(target) = mint_bytes {
            let mut token = std::mem::take(&mut mint.token);
            pad(target, &mut token, |t| {
                pb::MintAccessTokenResponse {
                    token: t.clone(),
                    ..mint.clone()
                }
                .encoded_len()
            });
            mint.token = token;
        }
        Ceiling { bearer, mint }
    }

    /// The encoded sizes of the GetBearer and MintAccessToken replies.
    pub fn reply_bytes(&self) -> (usize, usize) {
        (self.bearer.encoded_len(), self.mint.encoded_len())
    }

    /// Serves the ceiling on `listener` (TCP_NODELAY, as the daemon) until
    /// the process ends.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(BrokerServer::new(self))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            )
            .await?;
        Ok(())
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
            matched: pb::WebhookSecret::Primary.into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_replies_have_the_asked_size() {
        let ceiling = Ceiling::padded(Some(480), Some(520));
        let (bearer, mint) = ceiling.reply_bytes();
        // The length prefix of the token may grow by one byte at the boundary.
        assert!((480..=481).contains(&bearer), "{bearer}");
        assert!((520..=521).contains(&mint), "{mint}");
        let unpadded = Ceiling::padded(None, None);
        assert_eq!(unpadded.bearer.access_token.len(), 400);
        assert_eq!(unpadded.mint.token.len(), 440);
    }
}
