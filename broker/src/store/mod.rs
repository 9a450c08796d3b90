//! Persistence: a small key-value [`Store`] trait over opaque bytes with a
//! version per key, the sled backend, the AEAD sealing of records, and the
//! [`Vault`] that ties them to credentials.
//!
//! **Invariant:** no byte reaches a [`Store`] unsealed. Only [`vault`] calls
//! [`seal`], so backends (sled, storage plugins) never see a secret or an
//! Account SID in clear.
//!
//! Every backend passes the same conformance suite, the plugin SDK's
//! (`twilio_broker_plugin_sdk::conformance::storage`), through
//! [`BlockingStore`].

mod blocking;
#[cfg(test)]
mod crash_store;
#[cfg(test)]
mod memory;
pub(crate) mod record;
// The AEAD primitive lives beside this module (`crate::seal`), below both
// the store and the state file; the vault names it `super::seal`.
pub(crate) use crate::seal;
#[cfg(test)]
mod seal_props;
pub mod sled_store;
pub mod vault;
#[cfg(test)]
mod vault_props;

pub use blocking::BlockingStore;
pub use sled_store::SledStore;
// The trait and its types live in `twilio-broker-store-api`, below both this
// crate and the plugin host (whose `PluginStore` implements the trait).
#[cfg(test)]
pub(crate) use twilio_broker_store_api::Changes;
pub use twilio_broker_store_api::{Cas, ChangeFeed, Store, StoreError, Versioned};
pub use vault::Vault;
