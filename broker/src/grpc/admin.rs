//! The `Admin` service: put, get, list and delete credentials. Metadata only
//! ever leaves; secrets are write-only.

use std::sync::Arc;
use std::time::SystemTime;

use tonic::{Request, Response, Status};
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_server::Admin;

use super::convert;
use crate::credential;
use crate::server::State;

/// The Admin gRPC service.
pub struct AdminApi {
    state: Arc<State>,
}

impl AdminApi {
    /// Serves Admin calls against `state`.
    pub fn new(state: Arc<State>) -> Self {
        AdminApi { state }
    }
}

#[tonic::async_trait]
impl Admin for AdminApi {
    async fn put_credential(
        &self,
        request: Request<pb::PutCredentialRequest>,
    ) -> Result<Response<pb::PutCredentialResponse>, Status> {
        let credential = convert::credential_from_put(request.into_inner(), SystemTime::now())?;
        let name = credential.name.clone();
        let kind = credential.secret.kind().as_str();
        let stored = self.state.vault.put(credential).await?;
        tracing::info!(credential = %name, kind, "credential stored");
        Ok(Response::new(pb::PutCredentialResponse {
            credential: Some(convert::metadata(&stored)),
        }))
    }

    async fn get_credential(
        &self,
        request: Request<pb::GetCredentialRequest>,
    ) -> Result<Response<pb::GetCredentialResponse>, Status> {
        let name = request.into_inner().name;
        credential::check_name("name", &name)?;
        let found = self.state.vault.lookup(&name)?;
        Ok(Response::new(pb::GetCredentialResponse {
            credential: Some(convert::metadata(&found)),
        }))
    }

    async fn list_credentials(
        &self,
        _request: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        let credentials = self
            .state
            .vault
            .list()
            .iter()
            .map(|c| convert::metadata(c))
            .collect();
        Ok(Response::new(pb::ListCredentialsResponse { credentials }))
    }

    async fn delete_credential(
        &self,
        request: Request<pb::DeleteCredentialRequest>,
    ) -> Result<Response<pb::DeleteCredentialResponse>, Status> {
        let name = request.into_inner().name;
        credential::check_name("name", &name)?;
        let removed = self.state.vault.delete(&name).await?;
        tracing::info!(credential = %name, "credential deleted");
        let credential = match removed {
            Some(removed) => convert::metadata(&removed),
            None => pb::CredentialMetadata {
                name,
                ..Default::default()
            },
        };
        Ok(Response::new(pb::DeleteCredentialResponse {
            credential: Some(credential),
        }))
    }
}
