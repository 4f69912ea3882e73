//! What a located CPython installation is, and the refusals every platform's
//! rules share (`python_locator` on Linux, `windows_layout` on Windows).

use std::path::{Path, PathBuf};

/// A probed CPython installation, ready to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// What the host named, as given.
    pub named: PathBuf,
    /// The executable to give CPython as its program name: it derives the
    /// prefixes (and a venv's) from it. `None` when only a libpython was named
    /// and no executable of that installation was found.
    pub executable: Option<PathBuf>,
    /// The shared library to load.
    pub libpython: PathBuf,
    /// `(3, 11)` for CPython 3.11.
    pub minor: (u32, u32),
    /// The full version when the installation ran (`3.11.7`), else `3.11`.
    pub version: String,
    /// The installation's prefix, for CPython's `home` when there is no executable.
    pub home: Option<PathBuf>,
    /// The venv's root when the executable belongs to one.
    pub venv: Option<PathBuf>,
}

/// Why a named Python cannot be used; each message names the path and says
/// what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocateError(pub String);

/// What a host may name, for the messages.
pub(crate) const WHAT_TO_NAME: &str = if cfg!(windows) {
    "CPython python.exe (a venv's Scripts\\python.exe too), its python3XY.dll, or the folder \
     of an embeddable distribution"
} else {
    "Python executable (for example /usr/bin/python3 or a venv's bin/python) or a \
     libpython3.X.so file"
};

/// The kind of CPython build; pybridge runs GIL-enabled release builds only
/// (its cores are built against those, and a debug or free-threaded
/// libpython has another ABI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Build {
    /// `Py_GIL_DISABLED=1`, ABI flag `t` (PEP 703, 3.13+).
    pub(crate) free_threaded: bool,
    /// `Py_DEBUG=1`, ABI flag `d` (`--with-pydebug`, Debian's python3.X-dbg).
    pub(crate) debug: bool,
}

impl Build {
    /// What `sys.abiflags` or a libpython name's suffix (`t`, `d`, `td`) says.
    pub(crate) fn from_abiflags(flags: &str) -> Build {
        Build {
            free_threaded: flags.contains('t'),
            debug: flags.contains('d'),
        }
    }

    pub(crate) fn or(self, other: Build) -> Build {
        Build {
            free_threaded: self.free_threaded || other.free_threaded,
            debug: self.debug || other.debug,
        }
    }
}

/// Refuses a free-threaded or debug build, naming what was found (and how it
/// was recognised) and what this pybridge runs.
pub(crate) fn refuse_build(
    named: &Path,
    version: &str,
    build: Build,
    evidence: &str,
    supports: &str,
) -> Result<(), LocateError> {
    let (kind, instead) = match (build.free_threaded, build.debug) {
        (false, false) => return Ok(()),
        (true, false) => (
            "a free-threaded build",
            "the default build with the GIL (python3.X rather than python3.Xt)",
        ),
        (false, true) => (
            "a debug build",
            "a release build (python3.X rather than python3.Xd or Debian's python3.X-dbg)",
        ),
        (true, true) => (
            "a free-threaded debug build",
            "a release build with the GIL (python3.X rather than python3.Xtd)",
        ),
    };
    Err(LocateError(format!(
        "the Python {} is {kind} of CPython {version} ({evidence}); this pybridge supports \
         {supports}, GIL-enabled release builds only: name {instead}",
        named.display()
    )))
}

pub(crate) fn not_python(named: &Path, why: &str) -> LocateError {
    LocateError(format!(
        "{} is not a Python pybridge can use: {why}; name a {WHAT_TO_NAME}",
        named.display()
    ))
}
