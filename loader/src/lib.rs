//! The packaged `libpybridge.so`: one library for whichever CPython the host
//! has. It exports the C API of `bindings/c/pybridge.h` and, on the first
//! `pyb_engine_initialize`, chooses the Python (`pyb_config.python`, else
//! `PYBRIDGE_PYTHON`, else the Python the package was built with if it still
//! exists, else `python3` on `PATH`), loads its libpython with `RTLD_GLOBAL`,
//! then loads the pybridge core built for that CPython minor version
//! (`libpybridge-core-cp3XX.so`, beside this file), whose `NEEDED` libpython
//! is then the one already loaded. A host's calls made after that are bound to
//! the core's own functions (GNU indirect functions, `exported_function!`).
//! On Windows (`pybridge.dll`, cores `pybridge-core-cp3XY.dll`) every export
//! is a plain function that calls the core's through the table filled when
//! the core loads; `src/library.rs` holds what differs between the two.
//!
//! A process keeps the first libpython it loads: CPython cannot be unloaded,
//! and two of them in one process would share symbol names.

// The exports' one contract (non-NULL pointers are valid) is the C convention
// the header states once, as in the core.
#![allow(clippy::missing_safety_doc)]

// The C data types, the copy into host buffers and the rules for finding a
// Python are shared with the core: the `pybridge_abi` crate (abi/).

mod core;
mod core_functions;
mod exports;
mod last_error;
mod library;
mod pending_settings;

/// Defines the exported symbol `$name` as a GNU indirect function whose
/// resolver is `$resolve`. The dynamic linker calls the resolver when it binds
/// a caller's reference: at the caller's first call (lazy binding, the default)
/// or at `dlsym` (.NET's P/Invoke). A host initializes the engine before its
/// first GIL or object call, so by then the resolver returns the core's own
/// function and the host calls the core with no step in between. The symbol is
/// exported by the version script `scripts/package.sh` links with (rustc's own
/// export list knows only Rust items).
#[cfg(unix)]
#[macro_export]
macro_rules! exported_function {
    ($name:ident, $resolve:ident) => {
        ::std::arch::global_asm!(
            concat!(".globl ", stringify!($name)),
            concat!(".type ", stringify!($name), ", @gnu_indirect_function"),
            concat!(".set ", stringify!($name), ", {resolve}"),
            resolve = sym $resolve,
        );
    };
}

// The forwarding functions, generated from the header by build.rs.
include!(concat!(env!("OUT_DIR"), "/forward.rs"));
