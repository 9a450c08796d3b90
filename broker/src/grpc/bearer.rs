//! GetBearer at the edge: request checks and response conversion.

use twilio_broker_api::v1 as pb;

use crate::error::{Error, Result};
use crate::server::State;

/// Serves one GetBearer call.
pub async fn get_bearer(
    _state: &State,
    _request: pb::GetBearerRequest,
) -> Result<pb::GetBearerResponse> {
    Err(Error::FailedPrecondition(
        "GetBearer is not built yet (issue 3)".into(),
    ))
}
