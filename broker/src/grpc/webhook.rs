//! ValidateWebhook at the edge: request checks and response conversion.

use twilio_broker_api::v1 as pb;

use crate::error::{Error, Result};
use crate::server::State;

/// Serves one ValidateWebhook call.
pub fn validate_webhook(
    _state: &State,
    _request: pb::ValidateWebhookRequest,
) -> Result<pb::ValidateWebhookResponse> {
    Err(Error::FailedPrecondition(
        "ValidateWebhook is not built yet (issue 4)".into(),
    ))
}
