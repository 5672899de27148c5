//! The C ABI between capstan and a plugin library: both sides of it, and the loader.
//!
//! A library exports two symbols. [`VERSION_SYMBOL`] is an `extern "C" fn() -> u32` whose
//! signature never changes; the loader calls it before touching anything else and refuses a
//! library of another [`ABI_VERSION`]. [`TABLE_SYMBOL`] returns a `#[repr(C)]` [`Table`]
//! whose one function takes a JSON request and hands the JSON response to a host callback,
//! which copies it: neither side frees memory the other allocated, so plugin and host may use
//! different allocators and compilers. Every call runs under `catch_unwind` in the plugin, so a
//! panic comes back as an error instead of aborting capstan.
//!
//! This module is the one place in capstan that uses `unsafe`.

use std::any::Any;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::de::DeserializeOwned;

use crate::protocol::{Request, Response, serve};
use crate::{
    Document, Error, Handoff, HandoffRequest, Info, Plugin, Result, SourcedObject, Transformed,
};

/// The version of the plugin ABI this SDK speaks. It changes whenever [`Table`], the symbols
/// or the JSON protocol change incompatibly.
pub const ABI_VERSION: u32 = 1;

/// The symbol checked first: `extern "C" fn() -> u32` returning the library's ABI version.
pub const VERSION_SYMBOL: &str = "capstan_plugin_abi_version";

/// The symbol returning the library's [`Table`]: `extern "C" fn() -> *const Table`.
pub const TABLE_SYMBOL: &str = "capstan_plugin_table";

/// `call` answered with a JSON [`Response`].
const STATUS_OK: i32 = 0;
/// `call` caught a panic; the bytes are its message.
const STATUS_PANIC: i32 = 1;

/// Receives a call's answer: `sink` is the host's, the bytes live only during the call.
pub type WriteFn = extern "C" fn(sink: *mut c_void, bytes: *const u8, len: usize);

/// Answers one JSON request of `len` bytes at `input` through `write(sink, ...)`, returning a
/// status.
pub type CallFn =
    unsafe extern "C" fn(input: *const u8, len: usize, sink: *mut c_void, write: WriteFn) -> i32;

/// What a plugin library exports through [`TABLE_SYMBOL`].
#[repr(C)]
#[derive(Debug)]
pub struct Table {
    /// [`ABI_VERSION`] again, for a library whose version symbol and table disagree.
    pub abi_version: u32,
    /// `size_of::<Table>()`, so later versions can append fields.
    pub size: u32,
    /// The one entry point.
    pub call: CallFn,
}

impl Table {
    /// The table for `call`; used by [`crate::export_plugin!`].
    pub const fn new(call: CallFn) -> Self {
        Self {
            abi_version: ABI_VERSION,
            size: size_of::<Self>() as u32,
            call,
        }
    }
}

/// The plugin side of [`CallFn`], which [`crate::export_plugin!`] forwards to. `plugin` makes
/// (once) and returns the plugin; it runs under `catch_unwind` too.
///
/// # Safety
///
/// `input` must point to `len` readable bytes, and `write` must be safe to call with `sink`,
/// for the duration of the call.
#[doc(hidden)]
#[expect(unsafe_code, reason = "reads the request through a raw pointer")]
pub unsafe fn guest_call(
    plugin: fn() -> &'static dyn Plugin,
    input: *const u8,
    len: usize,
    sink: *mut c_void,
    write: WriteFn,
) -> i32 {
    // SAFETY: the caller guarantees `len` readable bytes at `input` for the call's duration.
    let input = unsafe { std::slice::from_raw_parts(input, len) };
    let (status, bytes) = match catch_unwind(AssertUnwindSafe(|| serve(plugin(), input))) {
        Ok(bytes) => (STATUS_OK, bytes),
        Err(panic) => (STATUS_PANIC, panic_message(panic.as_ref()).into_bytes()),
    };
    write(sink, bytes.as_ptr(), bytes.len());
    status
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// A plugin loaded from a library at run time. The library stays loaded for the life of the
/// process: unloading would leave any pointer into it (a vtable, a `&'static str`, a
/// thread-local destructor) dangling.
///
/// Its [`Plugin`] methods run the plugin on a thread of their own, never on the caller's async
/// worker: the plugin blocks, and has no access to the host's runtime.
#[derive(Debug)]
pub struct Loaded {
    info: Info,
    path: PathBuf,
    table: &'static Table,
}

impl Loaded {
    /// Loads the plugin library at `path`: checks its ABI version, then asks for its [`Info`].
    /// Load plugins from one thread, before starting others: the platform's loader error
    /// reporting is not thread-safe everywhere.
    ///
    /// # Errors
    ///
    /// [`Error::Missing`], [`Error::Load`], [`Error::MissingSymbol`], [`Error::AbiMismatch`],
    /// and [`Error::Panicked`] or [`Error::Malformed`] when asking for its info fails.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Missing {
                path: path.to_owned(),
            });
        }
        #[expect(unsafe_code, reason = "loading a library runs its initialisers")]
        // SAFETY: capstan loads only the libraries a project lists by path, which the user
        // trusts as they trust the capstan binary; their initialisers may run arbitrary code.
        let library = unsafe { libloading::Library::new(path) }.map_err(|error| Error::Load {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        // Never unloaded, so everything the library hands out lives as long as the process.
        let library: &'static libloading::Library = Box::leak(Box::new(library));
        let missing = |symbol: &'static str| Error::MissingSymbol {
            path: path.to_owned(),
            symbol,
        };
        #[expect(unsafe_code, reason = "looking up a symbol with its assumed type")]
        // SAFETY: the version symbol's type has been `extern "C" fn() -> u32` in every ABI
        // version, which is what makes it safe to call before anything else is known.
        let version = unsafe { library.get::<extern "C" fn() -> u32>(VERSION_SYMBOL.as_bytes()) }
            .map_err(|_| missing(VERSION_SYMBOL))?;
        let found = version();
        if found != ABI_VERSION {
            return Err(Error::AbiMismatch {
                path: path.to_owned(),
                found,
                expected: ABI_VERSION,
            });
        }
        #[expect(unsafe_code, reason = "looking up a symbol with its assumed type")]
        // SAFETY: a library of this ABI version exports the table function with this type.
        let table =
            unsafe { library.get::<extern "C" fn() -> *const Table>(TABLE_SYMBOL.as_bytes()) }
                .map_err(|_| missing(TABLE_SYMBOL))?;
        let table = table();
        #[expect(unsafe_code, reason = "reading the plugin's static table")]
        // SAFETY: the table function returns null or a pointer to a `'static` table inside the
        // library, which is never unloaded.
        let table = unsafe { table.as_ref() };
        // A null table counts as version 0, which no ABI ever had.
        let found = table.map_or(0, |table| table.abi_version);
        let table = table
            .filter(|_| found == ABI_VERSION)
            .ok_or(Error::AbiMismatch {
                path: path.to_owned(),
                found,
                expected: ABI_VERSION,
            })?;
        let mut loaded = Self {
            info: Info {
                name: file_name(path),
                version: String::new(),
                capabilities: Vec::new(),
            },
            path: path.to_owned(),
            table,
        };
        loaded.info = loaded.call(&Request::Info)?;
        Ok(loaded)
    }

    /// The library's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn call<T: DeserializeOwned>(&self, request: &Request) -> Result<T> {
        let input = serde_json::to_vec(request).map_err(|error| self.malformed(&error))?;
        let mut output: Vec<u8> = Vec::new();
        let sink: *mut Vec<u8> = &mut output;
        #[expect(unsafe_code, reason = "calling into the plugin library")]
        // SAFETY: `input` and `output` outlive the call; `collect` is given `sink`, a pointer
        // to `output`, which nothing else touches until the call returns.
        let status =
            unsafe { (self.table.call)(input.as_ptr(), input.len(), sink.cast(), collect) };
        if status == STATUS_PANIC {
            return Err(Error::Panicked {
                name: self.info.name.clone(),
                path: self.path.clone(),
                message: String::from_utf8_lossy(&output).into_owned(),
            });
        }
        let response: Response =
            serde_json::from_slice(&output).map_err(|error| self.malformed(&error))?;
        match response {
            Response::Ok(value) => {
                serde_json::from_value(value).map_err(|error| self.malformed(&error))
            }
            Response::Error(message) => Err(Error::Plugin {
                name: self.info.name.clone(),
                message,
            }),
        }
    }

    fn malformed(&self, error: &serde_json::Error) -> Error {
        Error::Malformed {
            name: self.info.name.clone(),
            path: self.path.clone(),
            message: error.to_string(),
        }
    }

    /// Runs one call on a thread of its own and waits for it without blocking the caller's
    /// executor.
    async fn call_off_thread<T: DeserializeOwned + Send + 'static>(
        &self,
        request: Request,
    ) -> Result<T> {
        let (sender, receiver) = futures::channel::oneshot::channel();
        let plugin = Self {
            info: self.info.clone(),
            path: self.path.clone(),
            table: self.table,
        };
        std::thread::spawn(move || {
            let _ = sender.send(plugin.call(&request));
        });
        receiver.await.unwrap_or_else(|_| {
            Err(Error::Panicked {
                name: self.info.name.clone(),
                path: self.path.clone(),
                message: "the thread calling the plugin ended without an answer".to_owned(),
            })
        })
    }
}

extern "C" fn collect(sink: *mut c_void, bytes: *const u8, len: usize) {
    #[expect(
        unsafe_code,
        reason = "the plugin hands its answer over as a raw pointer"
    )]
    // SAFETY: `sink` is the `Vec<u8>` `Loaded::call` passed, borrowed by nothing else during
    // the call, and the plugin guarantees `len` readable bytes at `bytes` while `collect` runs.
    unsafe {
        (*sink.cast::<Vec<u8>>()).extend_from_slice(std::slice::from_raw_parts(bytes, len));
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

#[async_trait]
impl Plugin for Loaded {
    fn info(&self) -> Info {
        self.info.clone()
    }

    async fn stages(&self) -> Result<Vec<String>> {
        self.call_off_thread(Request::Stages).await
    }

    async fn render(&self, stage: &str) -> Result<Vec<Document>> {
        let stage = stage.to_owned();
        self.call_off_thread(Request::Render { stage }).await
    }

    async fn transform(&self, stage: &str, objects: Vec<SourcedObject>) -> Result<Transformed> {
        let stage = stage.to_owned();
        self.call_off_thread(Request::Transform { stage, objects })
            .await
    }

    async fn handoff(&self, request: HandoffRequest) -> Result<Handoff> {
        self.call_off_thread(Request::Handoff { request }).await
    }
}
