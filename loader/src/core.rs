//! Choosing the Python and loading its libpython and the matching core.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use pybridge_abi::python_locator::{Installation, default_candidates, locate};

use crate::core_functions::CoreFunctions;
use crate::library::{self, Library, Scope};
use crate::pending_settings;

/// The environment variable that names the Python when the config does not.
pub(crate) const PYTHON_VARIABLE: &str = "PYBRIDGE_PYTHON";

/// The loaded core: set once, never unset.
pub(crate) struct Core {
    pub(crate) functions: CoreFunctions,
    /// Held for the life of the process: the core is never unloaded.
    _library: Library,
    /// The Python as the host named it, and how it was chosen.
    pub(crate) chosen: String,
    /// What `pyb_config.python` is for the core when the host names nothing:
    /// the path this loader chose.
    pub(crate) python: CString,
}

static CORE: OnceLock<Core> = OnceLock::new();

/// The libpython loaded so far (with or without a core): a process keeps it.
static LIBPYTHON: Mutex<Option<(PathBuf, String)>> = Mutex::new(None);

/// The loaded core's functions, once a core is loaded.
#[inline(always)]
pub(crate) fn functions() -> Option<&'static CoreFunctions> {
    CORE.get().map(|core| &core.functions)
}

pub(crate) fn loaded() -> Option<&'static Core> {
    CORE.get()
}

/// Where this library was loaded from: the cores sit beside it.
fn own_directory() -> PathBuf {
    let Some(path) = library::own_path() else {
        return PathBuf::from(".");
    };
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The core file for CPython `major.minor`.
fn core_file_name((major, minor): (u32, u32)) -> String {
    let (prefix, suffix) = library::CORE_FILE;
    format!("{prefix}{major}{minor}{suffix}")
}

/// The versions with a core beside this library, oldest first.
fn available_minors() -> Vec<(u32, u32)> {
    let mut versions: Vec<(u32, u32)> = std::fs::read_dir(own_directory())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let (prefix, suffix) = library::CORE_FILE;
            let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
            let (major, minor) = digits.split_at(1);
            Some((major.parse().ok()?, minor.parse().ok()?))
        })
        .collect();
    versions.sort();
    versions
}

/// The versions with a core beside this library, for messages and
/// `pyb_python_info`: `3.10, 3.11`.
pub(crate) fn available_versions() -> Vec<String> {
    available_minors()
        .into_iter()
        .map(|(major, minor)| format!("{major}.{minor}"))
        .collect()
}

/// What this package runs, for the messages that refuse a Python.
fn supported_text() -> String {
    let versions = available_versions();
    if versions.is_empty() {
        format!(
            "no CPython at all (no {}3XX{} beside the loader in {})",
            library::CORE_FILE.0,
            library::CORE_FILE.1,
            own_directory().display()
        )
    } else {
        format!("CPython {}", versions.join(", "))
    }
}

/// The Python the host names (`named`: `pyb_config.python`), and how.
fn choose(named: Option<&str>) -> Result<(PathBuf, String), String> {
    if let Some(path) = named {
        return Ok((PathBuf::from(path), "pyb_config.python".to_string()));
    }
    if let Some(path) = std::env::var_os(PYTHON_VARIABLE).filter(|value| !value.is_empty()) {
        return Ok((PathBuf::from(path), PYTHON_VARIABLE.to_string()));
    }
    let build = env!("PYB_BUILD_PYTHON_EXECUTABLE");
    if !build.is_empty() && Path::new(build).is_file() {
        return Ok((
            PathBuf::from(build),
            "default: the Python pybridge was built with".to_string(),
        ));
    }
    default_candidates().into_iter().next().ok_or_else(|| {
        format!(
            "no Python was named and none was found ({}); name one with pyb_config.python or \
             {PYTHON_VARIABLE}",
            library::DEFAULT_PYTHON_PLACES
        )
    })
}

/// Loads the core for the Python the host names, once per process.
pub(crate) fn load(named: Option<&str>) -> Result<&'static Core, String> {
    static LOADING: Mutex<()> = Mutex::new(());
    let _loading = LOADING.lock().unwrap_or_else(|poison| poison.into_inner());
    if let Some(core) = CORE.get() {
        return Ok(core);
    }
    let (path, how) = choose(named)?;
    let supports = supported_text();
    let installation =
        locate(&path, &supports).map_err(|error| format!("{} (chosen by {how})", error.0))?;
    let core_path = own_directory().join(core_file_name(installation.minor));
    if !core_path.is_file() {
        let newest = available_minors().last().copied();
        let newer = match newest {
            Some(newest) if installation.minor > newest => format!(
                ", newer than the newest CPython this pybridge was built for ({}.{}); a later \
                 pybridge release may support it",
                newest.0, newest.1
            ),
            _ => String::new(),
        };
        return Err(format!(
            "{} is CPython {}, which this pybridge has no core for{newer} (chosen by {how}); \
             this pybridge supports {supports}, GIL-enabled release builds only: name one of those",
            path.display(),
            installation.version,
        ));
    }
    open_libpython(&installation)?;
    let library = Library::open(&core_path, Scope::Local)?;
    let functions = CoreFunctions::resolve(&library)?;
    let chosen = format!(
        "{} (chosen by {how}; CPython {}, core {})",
        path.display(),
        installation.version,
        core_path.display()
    );
    let python = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{} contains a NUL byte", path.display()))?;
    let core = CORE.get_or_init(|| Core {
        functions,
        _library: library,
        chosen,
        python,
    });
    pending_settings::hand_to(&core.functions);
    Ok(core)
}

/// Loads the installation's libpython with its symbols global, as extension
/// modules and the core need; refuses a second, different libpython.
fn open_libpython(installation: &Installation) -> Result<(), String> {
    let mut loaded = LIBPYTHON
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let wanted = std::fs::canonicalize(&installation.libpython)
        .unwrap_or_else(|_| installation.libpython.clone());
    if let Some((path, version)) = loaded.as_ref() {
        if *path != wanted {
            return Err(format!(
                "{} is CPython {} ({}), but this process already loaded CPython {version} from {}; \
                 one process can load one libpython: name that Python, or use another process",
                installation.named.display(),
                installation.version,
                wanted.display(),
                path.display()
            ));
        }
        return Ok(());
    }
    Library::open(&wanted, Scope::Global)?;
    *loaded = Some((wanted, installation.version.clone()));
    Ok(())
}
