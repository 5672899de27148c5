//! The capstan plugin SDK: how a site adds its own stages, policy checks or deployment
//! backends to capstan without forking it.
//!
//! A plugin implements [`Plugin`]: a name, a version, and any of three optional capabilities
//! ([`Capability`]): provide stages, transform or validate a stage's objects before they are
//! applied (each object keeps its source, so problems name its file and line), and hand a
//! stage's objects to another deployer. The same trait serves a plugin linked into a Rust
//! program and one loaded at run time: [`Loaded`] implements it over a shared library.
//!
//! A plugin library is a `cdylib` that calls [`export_plugin!`]:
//!
//! ```
//! use capstan_plugin::{Capability, Document, Info, Plugin, Result, async_trait};
//!
//! #[derive(Default)]
//! struct Policy;
//!
//! #[async_trait]
//! impl Plugin for Policy {
//!     fn info(&self) -> Info {
//!         Info {
//!             name: "policy".into(),
//!             version: "1.0.0".into(),
//!             capabilities: vec![Capability::Stages],
//!         }
//!     }
//!     async fn stages(&self) -> Result<Vec<String>> {
//!         Ok(vec!["policy".into()])
//!     }
//!     async fn render(&self, _stage: &str) -> Result<Vec<Document>> {
//!         let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: policy}\n";
//!         Ok(vec![Document { name: "policy.yaml".into(), text: text.into() }])
//!     }
//! }
//!
//! capstan_plugin::export_plugin!(Policy::default());
//! # fn main() {
//! # let stages = capstan_plugin::block_on(Policy.stages()).unwrap();
//! # assert_eq!(stages, ["policy"]);
//! # }
//! ```
//!
//! # The boundary
//!
//! Rust has no stable ABI, and a library has its own copy of every static (the allocator,
//! tokio's runtime context, logging dispatchers). So nothing Rust-specific crosses: the
//! library exports a version function checked first and a `#[repr(C)]` [`Table`]; requests
//! and answers are JSON bytes, copied by the side that receives them; a panic is caught inside
//! the library and comes back as [`Error::Panicked`]; the host calls a loaded plugin on a
//! thread of its own, and the plugin drives its futures there ([`block_on`]). Libraries are
//! never unloaded. Loading runs the library's code: load only the paths a project lists.
//!
//! # Module map
//!
//! | module | what it holds |
//! |---|---|
//! | `plugin` | the trait and the data it exchanges |
//! | `protocol` | the JSON requests and answers, the plugin side's dispatch, `block_on` |
//! | `ffi` | the C ABI, both sides of it, and the loader: the crate's only `unsafe` |
//! | `error` | the one error type |

mod error;
mod ffi;
mod plugin;
mod protocol;

pub use async_trait::async_trait;
pub use error::{Error, Result};
pub use ffi::{ABI_VERSION, CallFn, Loaded, TABLE_SYMBOL, Table, VERSION_SYMBOL, WriteFn};
pub use plugin::{
    Capability, Claimed, Document, Finding, Handoff, HandoffObject, HandoffRequest, Info,
    OutputFile, Plugin, Source, SourcedObject, Transformed,
};
pub use protocol::block_on;

#[doc(hidden)]
pub mod __private {
    pub use crate::ffi::guest_call;
}

/// Exports a plugin from a `cdylib`: `export_plugin!(MyPlugin::new())`. The expression is
/// evaluated once, on the first call, under the same panic guard as every call.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:expr) => {
        fn __capstan_plugin() -> &'static dyn $crate::Plugin {
            static PLUGIN: ::std::sync::OnceLock<::std::boxed::Box<dyn $crate::Plugin>> =
                ::std::sync::OnceLock::new();
            PLUGIN
                .get_or_init(|| ::std::boxed::Box::new($plugin))
                .as_ref()
        }

        #[expect(
            unsafe_code,
            reason = "the host finds the entry points by their exact names"
        )]
        #[unsafe(no_mangle)]
        /// The plugin ABI version this library speaks.
        pub extern "C" fn capstan_plugin_abi_version() -> u32 {
            $crate::ABI_VERSION
        }

        #[expect(
            unsafe_code,
            reason = "the host finds the entry points by their exact names"
        )]
        #[unsafe(no_mangle)]
        /// The library's function table.
        pub extern "C" fn capstan_plugin_table() -> *const $crate::Table {
            #[expect(unsafe_code, reason = "an entry point taking raw pointers")]
            unsafe extern "C" fn call(
                input: *const u8,
                len: usize,
                sink: *mut ::std::ffi::c_void,
                write: $crate::WriteFn,
            ) -> i32 {
                #[expect(unsafe_code, reason = "forwarding the host's pointers")]
                // SAFETY: the host passes `len` readable bytes and a callback valid for `sink`,
                // alive for the duration of the call: `guest_call`'s contract.
                unsafe {
                    $crate::__private::guest_call(__capstan_plugin, input, len, sink, write)
                }
            }
            static TABLE: $crate::Table = $crate::Table::new(call);
            &TABLE
        }
    };
}
