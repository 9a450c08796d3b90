//! The `Admin` service: put, get, list and delete credentials, reload the
//! policy, back the store up. Metadata and sealed records only ever leave;
//! secrets are write-only.

use std::sync::Arc;
use std::time::SystemTime;

use tonic::{Request, Response, Status};
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_server::Admin;

use super::Services;
use super::convert;
use super::guard::guarded;
use crate::caller::Caller;
use crate::credential;
use crate::error::{Error, Result};
use crate::listing;
use crate::policy::{Action, Rpc};

/// The Admin gRPC service.
pub struct AdminApi {
    state: Arc<Services>,
}

impl AdminApi {
    /// Serves Admin calls against `state`.
    pub fn new(state: Arc<Services>) -> Self {
        AdminApi { state }
    }
}

async fn put(
    state: &Services,
    caller: &Caller,
    request: pb::PutCredentialRequest,
) -> Result<pb::PutCredentialResponse> {
    let credential = convert::credential_from_put(request, SystemTime::now())?;
    let name = credential.name.clone();
    let kind = credential.secret.kind().as_str();
    if let credential::Secret::ApiKey { lifecycle, .. } = &credential.secret
        && let Some(manager) = &lifecycle.manager
    {
        // Naming a manager lends its power (creating and deleting keys of
        // the account) to this credential's rotations: the caller must be
        // allowed to put the manager itself.
        let policy = state.policy.current();
        if !policy.permits(caller, &Action::new(Rpc::PutCredential).credential(manager)) {
            return Err(Error::ManagerUnusable {
                credential: name,
                manager: manager.clone(),
                detail: "the caller's policy does not allow PutCredential on it".into(),
            });
        }
    }
    let stored = match &state.rotator {
        Some(rotator) => rotator.put(credential).await?,
        None => {
            crate::rotation::check_manager(&state.vault, &credential)?;
            state.vault.put(credential).await?
        }
    };
    tracing::info!(credential = %name, kind, "credential stored");
    Ok(pb::PutCredentialResponse {
        credential: Some(convert::metadata(&stored)),
    })
}

fn get(state: &Services, request: pb::GetCredentialRequest) -> Result<pb::GetCredentialResponse> {
    credential::check_name("name", &request.name)?;
    let found = state.vault.lookup(&request.name)?;
    Ok(pb::GetCredentialResponse {
        credential: Some(convert::metadata(&found)),
    })
}

/// One page of the credentials the caller's rules cover for
/// ListCredentials (a scoped admin sees only its own), after the filter.
fn list(
    state: &Services,
    caller: &Caller,
    request: pb::ListCredentialsRequest,
) -> Result<pb::ListCredentialsResponse> {
    let page = listing::page(
        &state.vault,
        &state.policy,
        &state.page_tokens,
        caller,
        request.page_size,
        &request.filter,
        &request.page_token,
    )?;
    Ok(pb::ListCredentialsResponse {
        credentials: page
            .credentials
            .iter()
            .map(|c| convert::metadata(c))
            .collect(),
        next_page_token: page.next_page_token,
    })
}

async fn delete(
    state: &Services,
    request: pb::DeleteCredentialRequest,
) -> Result<pb::DeleteCredentialResponse> {
    let name = request.name;
    credential::check_name("name", &name)?;
    let removed = state.vault.delete(&name).await?;
    tracing::info!(credential = %name, "credential deleted");
    let credential = match removed {
        Some(removed) => convert::metadata(&removed),
        None => pb::CredentialMetadata {
            name,
            ..Default::default()
        },
    };
    Ok(pb::DeleteCredentialResponse {
        credential: Some(credential),
    })
}

/// RotateCredential: switches to a new key (or promoted Auth Token) and
/// leaves the retirement of the previous one to the rotator's task. The
/// Auth Token acknowledgement is checked by the rotator, so no caller of it
/// can skip it.
async fn rotate(
    state: &Services,
    request: pb::RotateCredentialRequest,
) -> Result<pb::RotateCredentialResponse> {
    credential::check_name("name", &request.name)?;
    let Some(rotator) = &state.rotator else {
        return Err(Error::NotRotatable {
            credential: request.name,
            detail: "this broker was started without Twilio's REST hosts".into(),
        });
    };
    let seconds = |s: u32| std::time::Duration::from_secs(u64::from(s));
    let propagation_delay = request.propagation_delay_seconds.map(seconds);
    if propagation_delay.is_some_and(|d| d > crate::rotation::MAX_WAIT) {
        return Err(Error::invalid(
            "propagation_delay_seconds",
            "is at most 86400 (one day)",
        ));
    }
    let options = crate::rotation::RotateOptions {
        overlap: request.overlap_seconds.map(seconds),
        propagation_delay,
        api_keys_break_acknowledged: request.acknowledge_api_keys_break,
    };
    let rotated = rotator.rotate_with(&request.name, options).await?;
    Ok(pb::RotateCredentialResponse {
        credential: Some(convert::metadata(&rotated.credential)),
        previous_key_sid: rotated.previous_key_sid,
        previous_deleted_after: Some(convert::timestamp(rotated.delete_after)),
    })
}

/// The bytes of a snapshot file (`Backup`), streamed in chunks of this size.
const BACKUP_CHUNK: usize = 64 * 1024;

/// A snapshot file taken for Backup, before it is cut into chunks.
pub(super) struct SnapshotFile(Vec<u8>);

impl super::guard::Outcome for SnapshotFile {}

/// Backup: a consistent copy of the sealed store, encoded as a snapshot file.
async fn backup(state: &Services) -> Result<SnapshotFile> {
    let copy = state.vault.sealed_copy().await?;
    let snapshot = crate::snapshot::Snapshot::of(copy);
    tracing::info!(
        generation = snapshot.header.generation,
        credentials = snapshot.header.credentials,
        "backup taken"
    );
    Ok(SnapshotFile(crate::snapshot::encode(&snapshot)))
}

/// The chunks of a snapshot file, in order.
fn chunks(file: SnapshotFile) -> Vec<std::result::Result<pb::BackupResponse, Status>> {
    file.0
        .chunks(BACKUP_CHUNK)
        .map(|data| {
            Ok(pb::BackupResponse {
                data: data.to_vec(),
            })
        })
        .collect()
}

/// OpenConsole: a one-time console login link for the caller itself.
fn open_console(state: &Services, caller: Arc<Caller>) -> Result<pb::OpenConsoleResponse> {
    let sessions = state.console.as_ref().ok_or(Error::ConsoleOff)?;
    let (login_url, expires_at) = sessions.issue_login(caller);
    Ok(pb::OpenConsoleResponse {
        login_url,
        expires_at: Some(convert::timestamp(expires_at)),
    })
}

fn reload(state: &Services) -> Result<pb::ReloadPolicyResponse> {
    let loaded = state.policy.reload()?;
    Ok(pb::ReloadPolicyResponse {
        rules: u32::try_from(loaded.rules).unwrap_or(u32::MAX),
        source: loaded.source,
    })
}

#[tonic::async_trait]
impl Admin for AdminApi {
    type BackupStream =
        tokio_stream::Iter<std::vec::IntoIter<std::result::Result<pb::BackupResponse, Status>>>;

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let state = &self.state;
        let file = guarded(state, request, |_, _| backup(state)).await?;
        Ok(Response::new(tokio_stream::iter(chunks(file.into_inner()))))
    }

    async fn put_credential(
        &self,
        request: Request<pb::PutCredentialRequest>,
    ) -> Result<Response<pb::PutCredentialResponse>, Status> {
        let state = &self.state;
        guarded(state, request, |r, caller| async move {
            put(state, &caller, r.request).await
        })
        .await
    }

    async fn get_credential(
        &self,
        request: Request<pb::GetCredentialRequest>,
    ) -> Result<Response<pb::GetCredentialResponse>, Status> {
        let state = &self.state;
        guarded(state, request, |r, _| async move { get(state, r.request) }).await
    }

    async fn list_credentials(
        &self,
        request: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        let state = &self.state;
        guarded(state, request, |r, caller| async move {
            list(state, &caller, r.request)
        })
        .await
    }

    async fn delete_credential(
        &self,
        request: Request<pb::DeleteCredentialRequest>,
    ) -> Result<Response<pb::DeleteCredentialResponse>, Status> {
        let state = &self.state;
        guarded(state, request, |r, _| delete(state, r.request)).await
    }

    async fn rotate_credential(
        &self,
        request: Request<pb::RotateCredentialRequest>,
    ) -> Result<Response<pb::RotateCredentialResponse>, Status> {
        let state = &self.state;
        guarded(state, request, |r, _| rotate(state, r.request)).await
    }

    async fn open_console(
        &self,
        request: Request<pb::OpenConsoleRequest>,
    ) -> Result<Response<pb::OpenConsoleResponse>, Status> {
        let state = &self.state;
        guarded(state, request, |_, caller| async move {
            open_console(state, caller)
        })
        .await
    }

    async fn reload_policy(
        &self,
        request: Request<pb::ReloadPolicyRequest>,
    ) -> Result<Response<pb::ReloadPolicyResponse>, Status> {
        let state = &self.state;
        guarded(state, request, |_, _| async move { reload(state) }).await
    }
}
