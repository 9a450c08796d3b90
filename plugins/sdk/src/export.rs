//! The export macros: one line turns a type implementing [`AuditPlugin`] or
//! [`StoragePlugin`] into a loadable library, with no `unsafe` in the
//! author's crate.
//!
//! [`AuditPlugin`]: crate::AuditPlugin
//! [`StoragePlugin`]: crate::StoragePlugin

/// Exports an [`AuditPlugin`](crate::AuditPlugin) type as this library's
/// plugin: defines the two ABI symbols and the static tables (ABI version 2;
/// the table's `version` is the crate's `CARGO_PKG_VERSION`). Use once per
/// library, in a crate built as `crate-type = ["cdylib"]`.
///
/// ```ignore
/// twilio_broker_plugin_sdk::export_audit_sink!(MySink);
/// ```
#[macro_export]
macro_rules! export_audit_sink {
    ($plugin:ty) => {
        const _: () = {
            static AUDIT: $crate::abi::TbAuditV2 = $crate::abi::glue::audit_table::<$plugin>();
            static PLUGIN: $crate::abi::TbPluginV2 =
                $crate::abi::glue::audit_plugin::<$plugin>(&AUDIT, env!("CARGO_PKG_VERSION"));
            $crate::__export_symbols!(PLUGIN);
        };
    };
}

/// Exports a [`StoragePlugin`](crate::StoragePlugin) type as this library's
/// plugin: defines the two ABI symbols and the static tables (ABI version 2;
/// the table's `version` is the crate's `CARGO_PKG_VERSION`). Use once per
/// library, in a crate built as `crate-type = ["cdylib"]`.
///
/// ```ignore
/// twilio_broker_plugin_sdk::export_storage!(MyStore);
/// ```
#[macro_export]
macro_rules! export_storage {
    ($plugin:ty) => {
        const _: () = {
            static STORAGE: $crate::abi::TbStorageV2 =
                $crate::abi::glue::storage_table::<$plugin>();
            static PLUGIN: $crate::abi::TbPluginV2 =
                $crate::abi::glue::storage_plugin::<$plugin>(&STORAGE, env!("CARGO_PKG_VERSION"));
            $crate::__export_symbols!(PLUGIN);
        };
    };
}

/// The two exported symbols; shared by both export macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_symbols {
    ($table:ident) => {
        /// ABI handshake: the version this library speaks.
        #[unsafe(no_mangle)]
        pub extern "C" fn twilio_broker_plugin_abi_version() -> u32 {
            $crate::abi::TB_ABI_VERSION
        }

        /// The plugin table (valid for the life of the library).
        #[unsafe(no_mangle)]
        pub extern "C" fn twilio_broker_plugin_v2() -> *const $crate::abi::TbPluginV2 {
            &$table
        }
    };
}
