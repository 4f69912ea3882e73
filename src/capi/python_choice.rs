//! Which Python an engine runs: `pyb_config.python`, else `PYBRIDGE_PYTHON`,
//! else the Python pybridge was built with if it still exists, else `python3`
//! on `PATH`; and whether this library can run it.
//!
//! This library is linked to one libpython (`sys/loader.rs`), so the chosen
//! Python must be that one: same minor version, same file. The packaged
//! `libpybridge.so` (`loader/`) makes that so by loading the chosen Python's
//! libpython and then the core built for its version; it makes the same
//! choice with the same rules (both use `pybridge_abi::python_locator`).

use std::path::{Path, PathBuf};

use crate::abi::python_locator::{Installation, default_candidates, locate};
use crate::abi::status::PYB_E_PYTHON_UNUSABLE;
use crate::runtime::config::record_chosen_python;
use crate::runtime::error::{Error, Result};
use crate::sys::loader;

/// The environment variable that names the Python when the config does not.
pub(crate) const PYTHON_VARIABLE: &str = "PYBRIDGE_PYTHON";

/// What the engine's configuration takes from the chosen Python.
pub(crate) struct Chosen {
    /// CPython's program name; `None` for the build's Python.
    pub(crate) program_name: Option<String>,
    /// CPython's home, when only a libpython was named.
    pub(crate) home: Option<String>,
}

/// Chooses the Python for an engine (`named`: `pyb_config.python`).
pub(crate) fn choose(named: Option<&str>) -> Result<Chosen> {
    let (path, how) = match named {
        Some(path) => (PathBuf::from(path), "pyb_config.python".to_string()),
        None => match std::env::var_os(PYTHON_VARIABLE).filter(|value| !value.is_empty()) {
            Some(path) => (PathBuf::from(path), PYTHON_VARIABLE.to_string()),
            None => {
                let build = env!("PYB_BUILD_PYTHON_EXECUTABLE");
                if Path::new(build).is_file() {
                    // The Python this library is linked to: nothing to ask it.
                    record_chosen_python(format!(
                        "{build} (default: the Python pybridge was built with)"
                    ));
                    return Ok(Chosen {
                        program_name: None,
                        home: None,
                    });
                }
                // Then what the platform offers (python3 on PATH; on Windows the
                // registry's installations first), and last the libpython
                // this library is linked to (a cross-built one has no build Python).
                default_candidates().into_iter().next().unwrap_or_else(|| {
                    (
                        PathBuf::from(loader::libpython_path()),
                        "default: the libpython this library is linked to".to_string(),
                    )
                })
            }
        },
    };
    // This library is linked to one libpython: it runs that CPython only.
    let supports = format!(
        "CPython {} (the libpython it is linked to)",
        loader::running_version()
    );
    let installation = locate(&path, &supports)
        .map_err(|error| unusable(format!("{} (chosen by {how})", error.0)))?;
    refuse_if_not_loaded(&installation)?;
    record_chosen_python(format!(
        "{} (chosen by {how}; CPython {}{})",
        path.display(),
        installation.version,
        installation
            .venv
            .as_ref()
            .map(|venv| format!(", venv {}", venv.display()))
            .unwrap_or_default()
    ));
    Ok(Chosen {
        program_name: installation
            .executable
            .map(|path| path.display().to_string()),
        home: installation.home.map(|path| path.display().to_string()),
    })
}

fn unusable(message: String) -> Error {
    Error::new(PYB_E_PYTHON_UNUSABLE, message)
}

/// The chosen Python must be the libpython this process runs.
fn refuse_if_not_loaded(installation: &Installation) -> Result<()> {
    let loaded = loader::libpython_path();
    let running = loader::running_version();
    // Both sides canonicalized: on Windows a canonical path is `\\?\C:\...`,
    // which the module path the loader gives (GetModuleFileNameW) is not.
    let same = match (
        std::fs::canonicalize(&installation.libpython),
        std::fs::canonicalize(&loaded),
    ) {
        (Ok(chosen), Ok(loaded)) => chosen == loaded,
        _ => false,
    };
    if same {
        return Ok(());
    }
    Err(unusable(format!(
        "{} is CPython {} ({}), but this process runs CPython {running} from {loaded}; one \
         process can load one libpython: name that Python (or none), or use another process \
         (the packaged libpybridge.so loads the libpython of the Python it is first given)",
        installation.named.display(),
        installation.version,
        installation.libpython.display()
    )))
}
