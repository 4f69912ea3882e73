//! Finding a CPython installation from what a host names: a Python executable
//! (a venv's `bin/python` too) or a libpython path.
//!
//! An executable is asked about itself: it runs once with `-I -c` and a short
//! probe that prints its version, prefixes, build flags and where its shared
//! library is, which is what `python3-config` would read too. That is the one
//! way that works for every layout (pyenv, Debian's multiarch `/usr`, venvs,
//! `python3` shims that are shell scripts), because the running Python reads
//! its own `sysconfig`. A libpython path is recognised by its file name and
//! turned into its installation's executable when one sits in the usual place.
//!
//! The core starts the Python this finds; the packaged loader applies the same
//! rule to pick the core built for that Python's version.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// How long the probe may take before the named file is given up on.
const PROBE_DEADLINE: Duration = Duration::from_secs(30);

const PROBE: &str = "\
import sys, sysconfig
v = sysconfig.get_config_var
print('pybridge-probe-1')
print('implementation=' + sys.implementation.name)
print('version=%d.%d.%d' % sys.version_info[:3])
print('prefix=' + sys.prefix)
print('base_prefix=' + sys.base_prefix)
print('executable=' + sys.executable)
print('shared=%s' % v('Py_ENABLE_SHARED'))
print('gil_disabled=%s' % v('Py_GIL_DISABLED'))
print('py_debug=%s' % v('Py_DEBUG'))
print('abiflags=' + getattr(sys, 'abiflags', ''))
print('libdir=%s' % v('LIBDIR'))
print('soname=%s' % v('INSTSONAME'))
print('ldlibrary=%s' % v('LDLIBRARY'))
";

/// What the probe printed, by key.
struct Probe(Vec<(String, String)>);

impl Probe {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty() && *value != "None")
    }
}

/// Finds the installation behind `named` (an executable or a libpython).
/// `supports` says what the caller can run (`CPython 3.10, 3.11`), for the
/// messages that refuse a build pybridge cannot run.
pub fn locate(named: &Path, supports: &str) -> Result<Installation, LocateError> {
    if named.as_os_str().is_empty() {
        return Err(LocateError(
            "the Python path is empty; name a Python executable (for example \
             /usr/bin/python3 or a venv's bin/python) or a libpython3.X.so file"
                .to_string(),
        ));
    }
    let metadata = std::fs::metadata(named).map_err(|error| {
        LocateError(format!(
            "the Python {} does not exist ({error}); name an existing Python executable \
             (for example /usr/bin/python3 or a venv's bin/python) or a libpython3.X.so file",
            named.display()
        ))
    })?;
    if metadata.is_dir() {
        return Err(LocateError(format!(
            "the Python {} is a directory; name the executable inside it (bin/python3) \
             or its libpython3.X.so file",
            named.display()
        )));
    }
    match libpython_name(named) {
        Some(name) => locate_library(named, name, supports),
        None => locate_executable(named, supports),
    }
}

/// What a libpython file name says: its version and ABI flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LibraryName {
    major: u32,
    minor: u32,
    build: Build,
}

/// The kind of CPython build; pybridge runs GIL-enabled release builds only
/// (its cores are built against those, and a debug or free-threaded
/// libpython has another ABI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Build {
    /// `Py_GIL_DISABLED=1`, ABI flag `t` (PEP 703, 3.13+).
    free_threaded: bool,
    /// `Py_DEBUG=1`, ABI flag `d` (`--with-pydebug`, Debian's python3.X-dbg).
    debug: bool,
}

impl Build {
    /// What `sys.abiflags` or a libpython name's suffix (`t`, `d`, `td`) says.
    fn from_abiflags(flags: &str) -> Build {
        Build {
            free_threaded: flags.contains('t'),
            debug: flags.contains('d'),
        }
    }

    fn or(self, other: Build) -> Build {
        Build {
            free_threaded: self.free_threaded || other.free_threaded,
            debug: self.debug || other.debug,
        }
    }
}

/// `libpython3.11.so.1.0` → 3.11, a release build; `libpython3.13t.so` →
/// 3.13 free-threaded; `libpython3.14d.so` → 3.14 debug.
fn libpython_name(path: &Path) -> Option<LibraryName> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix("libpython")?;
    let (version, _) = rest.split_once(".so")?;
    let digits = version.trim_end_matches(['t', 'd']);
    let build = Build::from_abiflags(&version[digits.len()..]);
    let (major, minor) = digits.split_once('.')?;
    Some(LibraryName {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        build,
    })
}

/// Refuses a free-threaded or debug build, naming what was found (and how it
/// was recognised) and what this pybridge runs.
fn refuse_build(
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

fn locate_library(
    named: &Path,
    LibraryName {
        major,
        minor,
        build,
    }: LibraryName,
    supports: &str,
) -> Result<Installation, LocateError> {
    let version = format!("{major}.{minor}");
    let file_name = named.file_name().unwrap_or_default().to_string_lossy();
    refuse_build(
        named,
        &version,
        build,
        &format!("its library is named {file_name}"),
        supports,
    )?;
    if !is_elf(named) {
        return Err(not_python(
            named,
            "its name says libpython but it is not a shared library",
        ));
    }
    // The installation's own executable, where pyenv, python.org builds and
    // Debian's multiarch layout put it, gives CPython its prefixes.
    let dir = named.parent().unwrap_or(Path::new("."));
    let candidates = [dir.join("../bin"), dir.join("../../bin")];
    for bin in candidates {
        let executable = bin.join(format!("python{version}"));
        if !executable.is_file() {
            continue;
        }
        match locate_executable(&executable, supports) {
            Ok(found) if same_file(&found.libpython, named) => {
                return Ok(Installation {
                    named: named.to_path_buf(),
                    ..found
                });
            }
            _ => {}
        }
    }
    // No executable: CPython's home is the prefix whose lib/python3.X holds
    // the standard library.
    let home = [dir.join(".."), dir.join("../..")]
        .into_iter()
        .find(|prefix| prefix.join(format!("lib/python{version}/os.py")).is_file())
        .map(|prefix| std::fs::canonicalize(&prefix).unwrap_or(prefix));
    let Some(home) = home else {
        return Err(LocateError(format!(
            "found no standard library for {} (no lib/python{version}/os.py above it) and no \
             python{version} executable beside it; name the Python executable instead",
            named.display()
        )));
    };
    Ok(Installation {
        named: named.to_path_buf(),
        executable: None,
        libpython: named.to_path_buf(),
        minor: (major, minor),
        version,
        home: Some(home),
        venv: None,
    })
}

fn locate_executable(named: &Path, supports: &str) -> Result<Installation, LocateError> {
    let probe = run_probe(named)?;
    let field = |key: &str| {
        probe
            .get(key)
            .ok_or_else(|| not_python(named, &format!("it did not report {key}")))
    };
    let implementation = field("implementation")?;
    if implementation != "cpython" {
        return Err(LocateError(format!(
            "the Python {} is {implementation}, not CPython; pybridge embeds CPython",
            named.display()
        )));
    }
    let version = field("version")?.to_string();
    let minor =
        parse_minor(&version).ok_or_else(|| not_python(named, "its version is not X.Y.Z"))?;
    // sysconfig says it on 3.13+ (Py_GIL_DISABLED) and on every version
    // (Py_DEBUG); sys.abiflags says both on POSIX builds.
    let configured = Build {
        free_threaded: probe.get("gil_disabled") == Some("1"),
        debug: probe.get("py_debug") == Some("1"),
    };
    let abiflags = probe.get("abiflags").unwrap_or_default();
    let build = configured.or(Build::from_abiflags(abiflags));
    let configured_flags: Vec<&str> = [
        (configured.free_threaded, "Py_GIL_DISABLED=1"),
        (configured.debug, "Py_DEBUG=1"),
    ]
    .into_iter()
    .filter_map(|(found, flag)| found.then_some(flag))
    .collect();
    let mut evidence = Vec::new();
    if !configured_flags.is_empty() {
        evidence.push(format!(
            "its sysconfig says {}",
            configured_flags.join(", ")
        ));
    }
    if build != configured {
        evidence.push(format!("its sys.abiflags is {abiflags:?}"));
    }
    refuse_build(named, &version, build, &evidence.join("; "), supports)?;
    let libdir = probe.get("libdir").map(PathBuf::from);
    let library = [probe.get("soname"), probe.get("ldlibrary")]
        .into_iter()
        .flatten()
        .filter(|name| name.contains(".so"))
        .filter_map(|name| libdir.as_ref().map(|dir| dir.join(name)))
        .find(|path| path.is_file());
    let Some(libpython) = library else {
        let shared = probe.get("shared") == Some("1");
        return Err(LocateError(format!(
            "the Python {} (CPython {version}) has no shared libpython{}: {}; pybridge loads \
             libpython, so use a Python built with --enable-shared (pyenv: \
             PYTHON_CONFIGURE_OPTS=--enable-shared; Debian: the libpython{}.{} package)",
            named.display(),
            if shared {
                " where its build says"
            } else {
                " (a static-only build)"
            },
            match &libdir {
                Some(dir) => format!(
                    "nothing named {} in {}",
                    probe.get("soname").unwrap_or("libpython*.so"),
                    dir.display()
                ),
                None => "its build names no library directory".to_string(),
            },
            minor.0,
            minor.1
        )));
    };
    let prefix = field("prefix")?;
    let base_prefix = field("base_prefix")?;
    let venv = (prefix != base_prefix).then(|| PathBuf::from(prefix));
    // The executable as Python itself reports it: the real binary behind a
    // launcher script (a pyenv shim), a venv's own `bin/python` in a venv.
    let executable = PathBuf::from(field("executable")?);
    Ok(Installation {
        named: named.to_path_buf(),
        executable: Some(executable),
        libpython: std::fs::canonicalize(&libpython).unwrap_or(libpython),
        minor,
        version,
        home: None,
        venv,
    })
}

fn parse_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn not_python(named: &Path, why: &str) -> LocateError {
    LocateError(format!(
        "{} is not a Python pybridge can use: {why}; name a CPython executable (for example \
         /usr/bin/python3 or a venv's bin/python) or a libpython3.X.so file",
        named.display()
    ))
}

/// Runs `executable -I -c PROBE` under a deadline and reads what it prints.
fn run_probe(executable: &Path) -> Result<Probe, LocateError> {
    let mut child = Command::new(executable)
        .args(["-I", "-c", PROBE])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| not_python(executable, &format!("it cannot be run ({error})")))?;
    let deadline = Instant::now() + PROBE_DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(not_python(
                    executable,
                    &format!("it did not answer within {} s", PROBE_DEADLINE.as_secs()),
                ));
            }
        }
    };
    let output = child.wait_with_output().map_err(|error| {
        not_python(
            executable,
            &format!("its output could not be read ({error})"),
        )
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    if !status.success() || lines.next() != Some("pybridge-probe-1") {
        let said = String::from_utf8_lossy(&output.stderr);
        let said = said
            .lines()
            .next()
            .or(stdout.lines().next())
            .unwrap_or("nothing");
        return Err(not_python(
            executable,
            &format!(
                "it ran as `-I -c <probe>` but did not answer as Python ({status}; it said: {said})"
            ),
        ));
    }
    Ok(Probe(
        lines
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
    ))
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The first executable file named `name` in the directories of `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Windows has no execute bit: a file found by its full name (`python.exe`)
/// is taken. (Choosing a Python on Windows is issue 23's second part.)
#[cfg(windows)]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpython_file_names_give_their_version_and_build() {
        let name = |major, minor, free_threaded, debug| {
            Some(LibraryName {
                major,
                minor,
                build: Build {
                    free_threaded,
                    debug,
                },
            })
        };
        assert_eq!(
            libpython_name(Path::new("/x/libpython3.11.so.1.0")),
            name(3, 11, false, false)
        );
        assert_eq!(
            libpython_name(Path::new("libpython3.13t.so")),
            name(3, 13, true, false)
        );
        assert_eq!(
            libpython_name(Path::new("libpython3.14d.so.1.0")),
            name(3, 14, false, true)
        );
        assert_eq!(
            libpython_name(Path::new("libpython3.15td.so")),
            name(3, 15, true, true)
        );
        assert_eq!(libpython_name(Path::new("/usr/bin/python3")), None);
        assert_eq!(libpython_name(Path::new("libpython3.so")), None);
    }
}
