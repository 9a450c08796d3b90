//! OAuth2 client_credentials bearer tokens (GetBearer): the upstream client
//! for Twilio's token endpoint, the per-credential cache with single-flight
//! refresh ahead of expiry, and the `[oauth]` settings.
//!
//! Knows nothing of tonic: `grpc/bearer.rs` converts at the edge.

mod cache;
pub mod clock;
mod errors;
pub mod expiry;
mod settings;
mod token;
pub mod upstream;

#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod expiry_props;
#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod model_check;

use std::sync::Arc;

pub use cache::{Bearers, EntryState, LastOutcome};
pub use clock::SystemClock;
pub(crate) use settings::check_url;
pub use settings::{OAuthConfig, Settings};
pub use token::Token;
pub use upstream::HttpUpstream;

use crate::store::Vault;

/// How often entries of deleted or replaced credentials are dropped.
pub const SWEEP_PERIOD: std::time::Duration = std::time::Duration::from_secs(30);

impl Bearers {
    /// The production cache: Twilio's endpoint over HTTPS, the system clock.
    pub fn connect(vault: Arc<Vault>, settings: Settings) -> anyhow::Result<Self> {
        let upstream = HttpUpstream::new(&settings)?;
        Ok(Bearers::new(
            vault,
            Arc::new(upstream),
            Arc::new(SystemClock),
            settings,
        ))
    }
}
