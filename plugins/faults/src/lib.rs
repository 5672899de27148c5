//! A plugin library that misbehaves as `CAPSTAN_PLUGIN_FAULT` says, for the loader's tests:
//! `abi` reports another ABI version, `panic` panics, `malformed` answers with bytes that are
//! not JSON. One library serves every case because each failure must happen at the boundary,
//! where only a built library can show it; the entry points are written by hand rather than
//! by `export_plugin!`, which would never let them misbehave.

use std::ffi::c_void;

use capstan_plugin::{ABI_VERSION, Info, Plugin, Table, WriteFn, async_trait};

struct Faulty;

fn fault() -> String {
    std::env::var("CAPSTAN_PLUGIN_FAULT").unwrap_or_default()
}

#[async_trait]
impl Plugin for Faulty {
    fn info(&self) -> Info {
        assert!(fault() != "panic", "the plugin was told to panic");
        Info {
            name: "faults".to_owned(),
            version: "0.0.0".to_owned(),
            capabilities: Vec::new(),
        }
    }
}

fn plugin() -> &'static dyn Plugin {
    &Faulty
}

/// The ABI version, or another one when told so.
#[expect(
    unsafe_code,
    reason = "the host finds the entry points by their exact names"
)]
#[unsafe(no_mangle)]
pub extern "C" fn capstan_plugin_abi_version() -> u32 {
    if fault() == "abi" {
        ABI_VERSION + 1
    } else {
        ABI_VERSION
    }
}

/// The function table.
#[expect(
    unsafe_code,
    reason = "the host finds the entry points by their exact names"
)]
#[unsafe(no_mangle)]
pub extern "C" fn capstan_plugin_table() -> *const Table {
    static TABLE: Table = Table::new(call);
    &TABLE
}

#[expect(unsafe_code, reason = "an entry point taking raw pointers")]
unsafe extern "C" fn call(input: *const u8, len: usize, sink: *mut c_void, write: WriteFn) -> i32 {
    if fault() == "malformed" {
        let bytes = b"{\"ok\": not json";
        write(sink, bytes.as_ptr(), bytes.len());
        return 0;
    }
    #[expect(unsafe_code, reason = "forwarding the host's pointers")]
    // SAFETY: the host passes `len` readable bytes and a callback valid for `sink` for the
    // duration of the call, as `guest_call` requires.
    unsafe {
        capstan_plugin::__private::guest_call(plugin, input, len, sink, write)
    }
}
