//! GetBearer at the edge: request checks and response conversion.

use std::time::Duration;

use twilio_broker_api::v1 as pb;

use super::Services;
use super::convert::timestamp;
use crate::credential::{self, Credential};
use crate::error::{Error, Result};

/// The longest `min_ttl_seconds` accepted: Twilio tokens live at most 24 h.
pub const MAX_MIN_TTL_SECONDS: u32 = 86_400;

/// Serves one GetBearer call.
pub async fn get_bearer(
    state: &Services,
    request: pb::GetBearerRequest,
) -> Result<pb::GetBearerResponse> {
    credential::check_name("credential", &request.credential)?;
    if request.min_ttl_seconds > MAX_MIN_TTL_SECONDS {
        return Err(Error::invalid(
            "min_ttl_seconds",
            format!(
                "is {}; at most {MAX_MIN_TTL_SECONDS} (24 h, Twilio's longest token lifetime)",
                request.min_ttl_seconds
            ),
        ));
    }
    let min_ttl = Duration::from_secs(u64::from(request.min_ttl_seconds));
    let bearer = state.bearer.get(&request.credential, min_ttl).await?;
    Ok(response(&bearer.token, &bearer.credential))
}

fn response(token: &crate::bearer::Token, credential: &Credential) -> pb::GetBearerResponse {
    pb::GetBearerResponse {
        access_token: token.expose().to_owned(),
        token_type: "Bearer".to_owned(),
        expires_at: Some(timestamp(token.expires_at)),
        account_sid: credential.secret.account_sid().to_owned(),
    }
}
