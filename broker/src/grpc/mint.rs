//! MintAccessToken at the edge: request checks and response conversion.

use twilio_broker_api::v1 as pb;

use crate::error::{Error, Result};
use crate::server::State;

/// Serves one MintAccessToken call.
pub fn mint_access_token(
    _state: &State,
    _request: pb::MintAccessTokenRequest,
) -> Result<pb::MintAccessTokenResponse> {
    Err(Error::FailedPrecondition(
        "MintAccessToken is not built yet (issue 4)".into(),
    ))
}
