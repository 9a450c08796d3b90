//! Recommend at the edge: request checks and response conversion.

use twilio_broker_api::v1 as pb;

use crate::error::{Error, Result};
use crate::server::State;

/// Serves one Recommend call.
pub fn recommend(_state: &State, _request: pb::RecommendRequest) -> Result<pb::RecommendResponse> {
    Err(Error::FailedPrecondition(
        "Recommend is not built yet (issue 5)".into(),
    ))
}
