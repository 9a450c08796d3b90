//! The export macros: one line turns a type implementing [`AuditPlugin`] or
//! [`StoragePlugin`] into a loadable library, with no `unsafe` in the
//! author's crate.
//!
//! [`AuditPlugin`]: crate::AuditPlugin
//! [`StoragePlugin`]: crate::StoragePlugin

/// Exports an [`AuditPlugin`](crate::AuditPlugin) type as this library's
/// plugin: defines the two ABI symbols and the static tables. Use once per
/// library, in a crate built as `crate-type = ["cdylib"]`.
///
/// ```ignore
/// twilio_broker_plugin_sdk::export_audit_sink!(MySink);
/// ```
#[macro_export]
macro_rules! export_audit_sink {
    ($plugin:ty) => {
        const _: () = {
            static AUDIT: $crate::abi::TbAuditV1 = $crate::abi::glue::audit_table::<$plugin>();
            static PLUGIN: $crate::abi::TbPluginV1 =
                $crate::abi::glue::audit_plugin::<$plugin>(&AUDIT);
            $crate::__export_symbols!(PLUGIN);
        };
    };
}

/// Exports a [`StoragePlugin`](crate::StoragePlugin) type as this library's
/// plugin: defines the two ABI symbols and the static tables. Use once per
/// library, in a crate built as `crate-type = ["cdylib"]`.
///
/// ```ignore
/// twilio_broker_plugin_sdk::export_storage!(MyStore);
/// ```
#[macro_export]
macro_rules! export_storage {
    ($plugin:ty) => {
        const _: () = {
            static STORAGE: $crate::abi::TbStorageV1 =
                $crate::abi::glue::storage_table::<$plugin>();
            static PLUGIN: $crate::abi::TbPluginV1 =
                $crate::abi::glue::storage_plugin::<$plugin>(&STORAGE);
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
        pub extern "C" fn twilio_broker_plugin_v1() -> *const $crate::abi::TbPluginV1 {
            &$table
        }
    };
}
