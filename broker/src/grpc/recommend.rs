//! Recommend at the edge: request checks and response conversion.
//!
//! Enum fields must name a known value; `client_sdk` may be unset.
//! `environment` is required unless `credential` names a stored credential
//! whose `environment` label says it (the review then uses the label);
//! `side` is required unless `credential` is set or `charge_free` asks
//! about test credentials (both are server-side: the answer is for the
//! server). Malformed resources are
//! INVALID_ARGUMENT naming `resources[i]`, unknown but well-formed ones are a
//! warning in the answer. `credential`, when set, must name a stored
//! credential (NOT_FOUND otherwise); it is reviewed by kind, key type and
//! labels, never by its secret, and its key age (since `updated_at`) is
//! reported as `credential_age_seconds`, with a finding when it is older
//! than the configured maximum (`[rotation] warn_age`).

use std::time::SystemTime;

use twilio_broker_api::v1 as pb;

use super::Services;
use super::convert::key_type_to_pb;
use crate::credential::{self, Credential};
use crate::error::{Error, Result};
use crate::recommend::{self, ClientSdk, Environment, Method, Needs, Side};

/// Serves one Recommend call.
pub fn recommend(state: &Services, request: pb::RecommendRequest) -> Result<pb::RecommendResponse> {
    let credential = if request.credential.is_empty() {
        None
    } else {
        credential::check_name("credential", &request.credential)?;
        Some(state.vault.lookup(&request.credential)?)
    };
    let needs = needs_from_pb(&request, credential.as_deref())?;
    let mut response = respond(&needs, credential.as_deref())?;
    if let Some(credential) = &credential {
        let age = recommend::review::secret_age(credential, SystemTime::now());
        response.credential_age_seconds = age.as_secs();
        response.review.extend(
            recommend::review::age_findings(credential, age, state.warn_key_age())
                .into_iter()
                .map(|f| pb::Finding {
                    id: f.id.to_owned(),
                    text: f.text,
                }),
        );
    }
    Ok(response)
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
        credential_age_seconds: 0,
    })
}

/// The domain needs of a request, naming the bad field. A stored
/// `credential` (already looked up) supplies a missing environment from its
/// label and makes a missing side the server's.
fn needs_from_pb(request: &pb::RecommendRequest, credential: Option<&Credential>) -> Result<Needs> {
    let environment = match pb::Environment::try_from(request.environment) {
        Ok(pb::Environment::Prototype) => Environment::Prototype,
        Ok(pb::Environment::Test) => Environment::Test,
        Ok(pb::Environment::Production) => Environment::Production,
        Ok(pb::Environment::Unspecified) => environment_of(credential)?,
        Err(_) => return Err(unknown("environment", request.environment)),
    };
    let side = match pb::Side::try_from(request.side) {
        Ok(pb::Side::Server) => Side::Server,
        Ok(pb::Side::Client) => Side::Client,
        // Stored credentials and test credentials live on a server.
        Ok(pb::Side::Unspecified) if credential.is_some() || request.charge_free => Side::Server,
        Ok(pb::Side::Unspecified) => {
            return Err(Error::invalid(
                "side",
                "is required: SIDE_SERVER, or SIDE_CLIENT for a browser or mobile app (it may \
                 be left out with charge_free or a stored credential, which are server-side)",
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

/// The environment a stored credential's label names, when the request
/// gives none.
fn environment_of(credential: Option<&Credential>) -> Result<Environment> {
    const VALUES: &str = "ENVIRONMENT_PROTOTYPE, ENVIRONMENT_TEST or ENVIRONMENT_PRODUCTION";
    let Some(credential) = credential else {
        return Err(Error::invalid(
            "environment",
            format!("is required: {VALUES} (or name a stored credential labelled environment=...)"),
        ));
    };
    match credential.environment_label() {
        Some(label) => Environment::from_label(label).ok_or_else(|| {
            Error::invalid(
                "environment",
                format!(
                    "is required: credential {:?} is labelled environment={label:?}, which is \
                     not production, test or prototype; set {VALUES}",
                    credential.name
                ),
            )
        }),
        None => Err(Error::invalid(
            "environment",
            format!(
                "is required: credential {:?} has no environment label to take it from; set \
                 {VALUES}, or label the credential (environment=production)",
                credential.name
            ),
        )),
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::*;
    use crate::credential::{SealedSecret, Secret};

    fn stored(label: Option<&str>) -> Credential {
        Credential {
            name: "prod-token".into(),
            labels: label
                .map(|l| BTreeMap::from([("environment".to_owned(), l.to_owned())]))
                .unwrap_or_default(),
            created_at: SystemTime::now(),
            updated_at: SystemTime::now(),
            secret: Secret::AuthToken {
                account_sid: "AC0123456789abcdef0123456789abcdef".into(),
                auth_token: SealedSecret::from("0123456789abcdef0123456789abcdef"),
                secondary_auth_token: None,
                rotation: None,
            },
        }
    }

    fn field(err: &Error) -> &str {
        match err {
            Error::InvalidField { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stored_credential_alone_is_reviewed_for_its_labelled_environment_on_the_server() {
        let only = pb::RecommendRequest {
            credential: "prod-token".into(),
            ..Default::default()
        };
        let credential = stored(Some("prod"));
        let needs = needs_from_pb(&only, Some(&credential)).unwrap();
        assert_eq!(
            (needs.environment, needs.side),
            (Environment::Production, Side::Server)
        );
        let answer = respond(&needs, Some(&credential)).unwrap();
        assert!(
            answer
                .review
                .iter()
                .any(|f| f.id == "auth-token-in-production"),
            "{:?}",
            answer.review
        );
        // What the request says wins over the label.
        let asked = pb::RecommendRequest {
            environment: pb::Environment::Test.into(),
            side: pb::Side::Client.into(),
            ..only.clone()
        };
        let needs = needs_from_pb(&asked, Some(&credential)).unwrap();
        assert_eq!(
            (needs.environment, needs.side),
            (Environment::Test, Side::Client)
        );
        // No label, or one that names no environment: the field, and why.
        for label in [None, Some("staging")] {
            let err = needs_from_pb(&only, Some(&stored(label))).unwrap_err();
            assert_eq!(field(&err), "environment");
            assert!(err.to_string().contains("prod-token"), "{err}");
        }
    }

    #[test]
    fn a_charge_free_question_needs_no_side_and_others_still_do() {
        let charge_free = pb::RecommendRequest {
            environment: pb::Environment::Test.into(),
            charge_free: true,
            ..Default::default()
        };
        let needs = needs_from_pb(&charge_free, None).unwrap();
        assert_eq!(needs.side, Side::Server);
        let answer = respond(&needs, None).unwrap();
        assert_eq!(answer.method(), pb::Method::TestCredentials);

        let plain = pb::RecommendRequest {
            environment: pb::Environment::Test.into(),
            ..Default::default()
        };
        let err = needs_from_pb(&plain, None).unwrap_err();
        assert_eq!(field(&err), "side");
        let err = needs_from_pb(&pb::RecommendRequest::default(), None).unwrap_err();
        assert_eq!(field(&err), "environment");
    }
}
