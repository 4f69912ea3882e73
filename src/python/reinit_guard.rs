//! Extension modules that CPython cannot initialize a second time in one
//! process. After `pyb_engine_shutdown` and `pyb_engine_initialize`, importing
//! one of them again crashes the process inside the module's own init function
//! (double free, segfault, or a fatal refcount error), measured in
//! docs/CPYTHON-NOTES.md ("Extension modules that crash a re-initialized
//! interpreter"). pybridge turns that crash into an `ImportError` with a
//! message: the module's pure-Python twin, where CPython has one (datetime,
//! decimal, zoneinfo, asyncio, hashlib), takes over without the host noticing.
//!
//! Only modules this process has already initialized are refused, so a first
//! interpreter, or a later one that never met them before, keeps the C versions.
//! What was initialized is learned two ways: the guard's import hook notes every
//! hazardous name it sees (this covers modules linked into libpython), and after
//! `Py_FinalizeEx` the loaded shared objects show which extension files were
//! ever opened (this covers imports the hook did not see: before it was
//! installed, or from `atexit` code during finalization).

use std::collections::BTreeSet;

use parking_lot::Mutex;

/// Every hazardous module this process has initialized, over all engines.
static INITIALIZED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// The modules the running CPython crashes on when a later interpreter imports
/// them again. Measured on 3.10.13, 3.11.7, 3.12.1 and 3.13.0 over every
/// standard-library module (see docs/CPYTHON-NOTES.md); 3.10 and 3.13 had none.
pub(crate) fn hazards() -> &'static [&'static str] {
    match running_minor_version() {
        // `_zoneinfo` drops a reference to None on every cycle; the fourth
        // import aborts with "deallocating None".
        Some(11) => &["_zoneinfo"],
        Some(12) => &[
            "_asyncio",
            "_ctypes",
            "_datetime",
            "_decimal",
            "_hashlib",
            "_ssl",
            "_zoneinfo",
        ],
        _ => &[],
    }
}

/// What a sub-interpreter that shares the main GIL refuses: every hazard
/// (each import there initializes the module once more), and on 3.10 and
/// 3.11 `_asyncio`, a single-phase module whose C code caches the running
/// event loop in a process-wide static keyed by thread-state id; those ids
/// repeat across interpreters, so a thread in a sub-interpreter was handed
/// the main interpreter's loop ("asyncio.run() cannot be called from a
/// running event loop" while pybridge's loop ran; found by tests/c/fuzz_api.c).
pub(crate) fn shared_subinterpreter_refusals() -> Vec<&'static str> {
    let mut refused = hazards().to_vec();
    if matches!(running_minor_version(), Some(10 | 11)) {
        refused.push("_asyncio");
    }
    refused
}

/// The hazards a new interpreter must refuse: those an earlier one initialized.
pub(crate) fn refused() -> Vec<&'static str> {
    INITIALIZED.lock().iter().copied().collect()
}

/// The `ImportError` text in the main interpreter; `%s` is the module name
/// (filled in by the hook).
pub(crate) fn refusal_message() -> String {
    refusal_text(
        "which a re-initialized engine would do",
        "a new process gets the C version back",
    )
}

/// The `ImportError` text in a sub-interpreter that shares the main GIL.
pub(crate) fn shared_subinterpreter_refusal_message() -> String {
    format!(
        "pybridge refuses to import %s in a sub-interpreter that shares the main GIL: on \
         CPython {} this extension module is initialized once more by each such import, or \
         keeps process-wide state that other interpreters see, and that crashes or misleads \
         the process (see docs/CPYTHON-NOTES.md in pybridge); its pure-Python version is used \
         where the standard library has one, and the main interpreter keeps the C version",
        crate::sys::loader::running_version()
    )
}

fn refusal_text(when: &str, where_c_stays: &str) -> String {
    format!(
        "pybridge refuses to import %s: CPython {} crashes when this extension module is \
         initialized a second time in one process, {when} (see docs/CPYTHON-NOTES.md in \
         pybridge); its pure-Python version is used where the standard library has one, and \
         {where_c_stays}",
        crate::sys::loader::running_version()
    )
}

/// Records hazards the import hook saw (names outside the list are ignored).
pub(crate) fn note_initialized<'a>(names: impl IntoIterator<Item = &'a str>) {
    let hazards = hazards();
    let mut initialized = INITIALIZED.lock();
    for name in names {
        if let Some(known) = hazards.iter().find(|known| **known == name) {
            initialized.insert(known);
        }
    }
}

/// After `Py_FinalizeEx`: CPython never unloads an extension's shared object,
/// so any hazard whose file is mapped has been initialized in this process.
pub(crate) fn note_loaded_extension_files() {
    let hazards = hazards();
    if hazards.is_empty() {
        return;
    }
    let files = crate::sys::loader::loaded_object_paths();
    note_initialized(files.iter().filter_map(|path| extension_module_name(path)));
}

/// `/…/lib-dynload/_datetime.cpython-312-x86_64-linux-gnu.so` → `_datetime`.
fn extension_module_name(path: &str) -> Option<&str> {
    let file = path.rsplit('/').next()?;
    let (module, rest) = file.split_once('.')?;
    (rest.ends_with(".so") || rest == "so").then_some(module)
}

fn running_minor_version() -> Option<u32> {
    let version = crate::sys::loader::running_version();
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some("3"), Some(minor)) => minor.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_file_names_give_module_names() {
        assert_eq!(
            extension_module_name("/x/lib-dynload/_datetime.cpython-312-x86_64-linux-gnu.so"),
            Some("_datetime")
        );
        assert_eq!(extension_module_name("/x/_zoneinfo.so"), Some("_zoneinfo"));
        assert_eq!(extension_module_name("/usr/lib/libpython3.12.so.1.0"), None);
        assert_eq!(extension_module_name("linux-vdso.so.1"), None);
        assert_eq!(extension_module_name(""), None);
    }
}
