//! The `Broker` service: one method per RPC, each delegating to its own
//! module beside this one (`bearer.rs`, `mint.rs`, `recommend.rs`, `webhook.rs`).

use std::sync::Arc;

use tonic::{Request, Response, Status};
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::broker_server::Broker;

use super::Services;
use super::guard::guarded;

/// The Broker gRPC service.
pub struct BrokerApi {
    state: Arc<Services>,
}

impl BrokerApi {
    /// Serves Broker calls against `state`.
    pub fn new(state: Arc<Services>) -> Self {
        BrokerApi { state }
    }
}

#[tonic::async_trait]
impl Broker for BrokerApi {
    async fn get_bearer(
        &self,
        request: Request<pb::GetBearerRequest>,
    ) -> Result<Response<pb::GetBearerResponse>, Status> {
        let state = &self.state;
        guarded(state, request, |r, _| {
            super::bearer::get_bearer(state, r.request)
        })
        .await
    }

    async fn mint_access_token(
        &self,
        request: Request<pb::MintAccessTokenRequest>,
    ) -> Result<Response<pb::MintAccessTokenResponse>, Status> {
        let state = &self.state;
        guarded(state, request, |r, _| async move {
            super::mint::mint_access_token(state, r)
        })
        .await
    }

    async fn recommend(
        &self,
        request: Request<pb::RecommendRequest>,
    ) -> Result<Response<pb::RecommendResponse>, Status> {
        let state = &self.state;
        guarded(state, request, |r, _| async move {
            super::recommend::recommend(state, r.request)
        })
        .await
    }

    async fn validate_webhook(
        &self,
        request: Request<pb::ValidateWebhookRequest>,
    ) -> Result<Response<pb::ValidateWebhookResponse>, Status> {
        let state = &self.state;
        guarded(state, request, |r, _| async move {
            super::webhook::validate_webhook(state, r.request)
        })
        .await
    }
}
