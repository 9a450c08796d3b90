//! Recommend at the edge: request checks and response conversion.
//!
//! Enum fields must name a known value (`environment` and `side` are
//! required; `client_sdk` may be unset); malformed resources are
//! INVALID_ARGUMENT naming `resources[i]`, unknown but well-formed ones are a
//! warning in the answer. `credential`, when set, must name a stored
//! credential (NOT_FOUND otherwise); it is reviewed by kind, key type and
//! labels, never by its secret.

use twilio_broker_api::v1 as pb;

use super::Services;
use super::convert::key_type_to_pb;
use crate::credential::{self, Credential};
use crate::error::{Error, Result};
use crate::recommend::{self, ClientSdk, Environment, Method, Needs, Side};

/// Serves one Recommend call.
pub fn recommend(state: &Services, request: pb::RecommendRequest) -> Result<pb::RecommendResponse> {
    let needs = needs_from_pb(&request)?;
    let credential = if request.credential.is_empty() {
        None
    } else {
        credential::check_name("credential", &request.credential)?;
        Some(state.vault.lookup(&request.credential)?)
    };
    respond(&needs, credential.as_deref())
}

/// The answer to `needs` as the wire shows it, without a stored credential
/// to review: the CLI's local mode prints exactly what a broker would send.
pub(crate) fn answer_locally(needs: &Needs) -> Result<pb::RecommendResponse> {
    respond(needs, None)
}

fn respond(needs: &Needs, credential: Option<&Credential>) -> Result<pb::RecommendResponse> {
    let answer = recommend::recommend(needs)?;
    let review = match credential {
        Some(credential) => recommend::review(credential, needs)?,
        None => Vec::new(),
    };
    Ok(pb::RecommendResponse {
        method: method_to_pb(answer.method).into(),
        key_type: answer
            .key_type
            .map_or(pb::KeyType::Unspecified, key_type_to_pb)
            .into(),
        reasons: answer.reasons,
        warnings: answer.warnings,
        limits: answer
            .limits
            .iter()
            .map(|l| pb::Limit {
                id: l.id.to_owned(),
                text: l.text.to_owned(),
                twilio_error_code: l.twilio_error_code,
                http_status: l.http_status,
            })
            .collect(),
        next_steps: answer.next_steps,
        review: review
            .into_iter()
            .map(|f| pb::Finding {
                id: f.id.to_owned(),
                text: f.text,
            })
            .collect(),
        rules: answer.rules.iter().map(|r| (*r).to_owned()).collect(),
    })
}

/// The domain needs of a request, naming the bad field.
fn needs_from_pb(request: &pb::RecommendRequest) -> Result<Needs> {
    let environment = match pb::Environment::try_from(request.environment) {
        Ok(pb::Environment::Prototype) => Environment::Prototype,
        Ok(pb::Environment::Test) => Environment::Test,
        Ok(pb::Environment::Production) => Environment::Production,
        Ok(pb::Environment::Unspecified) => {
            return Err(Error::invalid(
                "environment",
                "is required: ENVIRONMENT_PROTOTYPE, ENVIRONMENT_TEST or ENVIRONMENT_PRODUCTION",
            ));
        }
        Err(_) => return Err(unknown("environment", request.environment)),
    };
    let side = match pb::Side::try_from(request.side) {
        Ok(pb::Side::Server) => Side::Server,
        Ok(pb::Side::Client) => Side::Client,
        Ok(pb::Side::Unspecified) => {
            return Err(Error::invalid(
                "side",
                "is required: SIDE_SERVER, or SIDE_CLIENT for a browser or mobile app",
            ));
        }
        Err(_) => return Err(unknown("side", request.side)),
    };
    let client_sdk = match pb::ClientSdk::try_from(request.client_sdk) {
        Ok(pb::ClientSdk::Unspecified) => None,
        Ok(pb::ClientSdk::Voice) => Some(ClientSdk::Voice),
        Ok(pb::ClientSdk::Video) => Some(ClientSdk::Video),
        Ok(pb::ClientSdk::Conversations) => Some(ClientSdk::Conversations),
        Ok(pb::ClientSdk::Sync) => Some(ClientSdk::Sync),
        Err(_) => return Err(unknown("client_sdk", request.client_sdk)),
    };
    Ok(Needs {
        environment,
        side,
        time_limited: request.time_limited,
        charge_free: request.charge_free,
        needs_account_management: request.needs_account_management,
        least_privilege: request.least_privilege,
        resources: request.resources.clone(),
        client_sdk,
    })
}

fn unknown(field: &str, value: i32) -> Error {
    Error::invalid(field, format!("has unknown value {value}"))
}

fn method_to_pb(method: Method) -> pb::Method {
    match method {
        Method::AuthToken => pb::Method::AuthToken,
        Method::ApiKey => pb::Method::ApiKey,
        Method::OAuth2 => pb::Method::Oauth2,
        Method::AccessToken => pb::Method::AccessToken,
        Method::TestCredentials => pb::Method::TestCredentials,
    }
}
