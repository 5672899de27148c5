//! The one error type of capstan-plugin.

use std::path::PathBuf;

/// Why loading or calling a plugin failed. Every message names the plugin's library file, and
/// the plugin once its name is known.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The library file does not exist.
    #[error("plugin {}: no such file", .path.display())]
    Missing {
        /// The library's path.
        path: PathBuf,
    },

    /// The dynamic loader refused the library (not a shared library, wrong architecture,
    /// missing dependencies).
    #[error("plugin {}: cannot load the library: {message}", .path.display())]
    Load {
        /// The library's path.
        path: PathBuf,
        /// What the dynamic loader said.
        message: String,
    },

    /// The library lacks one of the symbols every plugin exports.
    #[error(
        "plugin {}: the library has no `{symbol}` symbol; is it a capstan plugin built with \
         `export_plugin!`?",
        .path.display()
    )]
    MissingSymbol {
        /// The library's path.
        path: PathBuf,
        /// The symbol.
        symbol: &'static str,
    },

    /// The library speaks another version of the plugin ABI.
    #[error(
        "plugin {}: built for plugin ABI version {found}, but this capstan speaks version \
         {expected}; rebuild the plugin against capstan-plugin {sdk}",
        .path.display(),
        sdk = env!("CARGO_PKG_VERSION")
    )]
    AbiMismatch {
        /// The library's path.
        path: PathBuf,
        /// The version the library reports.
        found: u32,
        /// [`crate::ABI_VERSION`].
        expected: u32,
    },

    /// The plugin panicked; the panic was caught at the boundary.
    #[error("plugin {name} ({}) panicked: {message}", .path.display())]
    Panicked {
        /// The plugin's name, or its file name before the plugin told its name.
        name: String,
        /// The library's path.
        path: PathBuf,
        /// The panic's message.
        message: String,
    },

    /// The plugin answered with bytes that are not the JSON the protocol expects.
    #[error("plugin {name} ({}) answered with malformed JSON: {message}", .path.display())]
    Malformed {
        /// The plugin's name, or its file name before the plugin told its name.
        name: String,
        /// The library's path.
        path: PathBuf,
        /// What was wrong with it.
        message: String,
    },

    /// The plugin does not offer what it was asked for.
    #[error("plugin {name} does not {capability}")]
    Unsupported {
        /// The plugin's name.
        name: String,
        /// `provide stages`, `transform objects`, `hand off stages`.
        capability: &'static str,
    },

    /// The plugin reported a failure of its own.
    #[error("plugin {name}: {message}")]
    Plugin {
        /// The plugin's name.
        name: String,
        /// What it said.
        message: String,
    },
}

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
