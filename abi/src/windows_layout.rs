//! Where a Windows CPython keeps its DLL and its standard library, read from
//! the files alone: the official installer's layout, a venv (`pyvenv.cfg`) and
//! the embeddable distribution (a flat folder with `python3XY.dll` and the
//! standard library zipped as `python3XY.zip`).
//!
//! Unlike on Linux, the installation is not asked about itself: the DLL's
//! name gives the version and the build (`python313.dll`, `python313t.dll`
//! free-threaded, `python313_d.dll` debug), and every layout keeps that DLL
//! beside the executable of the installation (a venv's `pyvenv.cfg` names that
//! folder as `home`). Starting a `python.exe` only to ask would cost a process
//! per engine start, and a broken one would be run rather than refused.
//!
//! The rules are plain path logic, so they are compiled and unit-tested on
//! every platform; `python_locator` applies them on Windows.

use std::path::{Path, PathBuf};

use crate::installation::{Build, Installation, LocateError, not_python, refuse_build};

/// What a Windows CPython DLL's name says: `python313.dll` → 3.13 release,
/// `python313t.dll` free-threaded, `python313_d.dll` debug. `python3.dll`
/// (the stable-ABI forwarder) and anything else give `None`.
pub(crate) fn dll_name(path: &Path) -> Option<((u32, u32), Build)> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let stem = name.strip_prefix("python")?.strip_suffix(".dll")?;
    let (stem, debug) = match stem.strip_suffix("_d") {
        Some(stem) => (stem, true),
        None => (stem, false),
    };
    let (digits, free_threaded) = match stem.strip_suffix('t') {
        Some(digits) => (digits, true),
        None => (stem, false),
    };
    // "3" then the minor: python313 → 3.13, python310 → 3.10.
    let minor = digits.strip_prefix('3')?;
    if minor.is_empty() || !minor.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((
        (3, minor.parse().ok()?),
        Build {
            free_threaded,
            debug,
        },
    ))
}

/// The CPython DLLs in `dir`, newest first (normally one).
fn dlls_in(dir: &Path) -> Vec<(PathBuf, (u32, u32), Build)> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter_map(|path| dll_name(&path).map(|(minor, build)| (path, minor, build)))
        .collect();
    found.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.debug.cmp(&b.2.debug)));
    found
}

/// The `home` a venv's `pyvenv.cfg` names, when `dir` holds one.
fn venv_home(dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(dir.join("pyvenv.cfg")).ok()?;
    pyvenv_home(&text)
}

/// The `home = ...` line of a `pyvenv.cfg` (keys are case-insensitive and
/// may carry spaces around `=`, as CPython's own reader allows).
pub(crate) fn pyvenv_home(text: &str) -> Option<PathBuf> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case("home"))
        .map(|(_, value)| PathBuf::from(value.trim()))
        .filter(|home| !home.as_os_str().is_empty())
}

/// True when `path` starts like a Windows executable or DLL (`MZ`).
fn is_portable_executable(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .is_ok()
        && magic == *b"MZ"
}

/// True when `home` holds the standard library of CPython `minor`: `Lib/os.py`
/// (an installation) or `python3XY.zip` (the embeddable distribution).
fn has_standard_library(home: &Path, minor: (u32, u32)) -> bool {
    home.join("Lib").join("os.py").is_file()
        || home
            .join(format!("python{}{}.zip", minor.0, minor.1))
            .is_file()
}

/// Finds the installation behind `named`: a folder (an embeddable
/// distribution, an installation, a venv), a `python3XY.dll`, or an
/// executable (`python.exe`, a venv's `Scripts\python.exe`).
pub(crate) fn locate(named: &Path, supports: &str) -> Result<Installation, LocateError> {
    if named.is_dir() {
        if let Some(home) = venv_home(named) {
            return from_installation(
                named,
                named.join("Scripts").join("python.exe"),
                &home,
                Some(named),
                supports,
            );
        }
        return from_installation(named, named.join("python.exe"), named, None, supports);
    }
    if let Some((minor, build)) = dll_name(named) {
        let version = refuse_dll_build(named, named, minor, build, supports)?;
        if !is_portable_executable(named) {
            return Err(not_python(
                named,
                "its name says python3XY.dll but it is not a DLL",
            ));
        }
        let home = named.parent().unwrap_or(Path::new("."));
        let executable = home.join("python.exe");
        return checked(
            named,
            Installation {
                named: named.to_path_buf(),
                executable: executable.is_file().then_some(executable),
                libpython: named.to_path_buf(),
                minor,
                version,
                home: Some(home.to_path_buf()),
                venv: None,
            },
        );
    }
    if !is_portable_executable(named) {
        return Err(not_python(
            named,
            "it is neither a Windows program nor a python3XY.dll",
        ));
    }
    // A venv's Scripts\python.exe: pyvenv.cfg sits one folder up.
    let dir = named.parent().unwrap_or(Path::new("."));
    for root in [dir, dir.parent().unwrap_or(dir)] {
        if let Some(home) = venv_home(root) {
            return from_installation(named, named.to_path_buf(), &home, Some(root), supports);
        }
    }
    from_installation(named, named.to_path_buf(), dir, None, supports)
}

/// The installation whose DLL sits in `home`, started through `executable`.
fn from_installation(
    named: &Path,
    executable: PathBuf,
    home: &Path,
    venv: Option<&Path>,
    supports: &str,
) -> Result<Installation, LocateError> {
    let dlls = dlls_in(home);
    let Some((libpython, minor, build)) = dlls
        .iter()
        .find(|(_, _, build)| *build == Build::default())
        .or(dlls.first())
        .cloned()
    else {
        return Err(not_python(
            named,
            &format!("found no python3XY.dll in {}", home.display()),
        ));
    };
    let version = refuse_dll_build(named, &libpython, minor, build, supports)?;
    checked(
        named,
        Installation {
            named: named.to_path_buf(),
            executable: executable.is_file().then_some(executable),
            libpython,
            minor,
            version,
            home: Some(home.to_path_buf()),
            venv: venv.map(Path::to_path_buf),
        },
    )
}

/// Refuses a free-threaded or debug DLL as its name says; else the version (`3.13`).
fn refuse_dll_build(
    named: &Path,
    dll: &Path,
    minor: (u32, u32),
    build: Build,
    supports: &str,
) -> Result<String, LocateError> {
    let version = format!("{}.{}", minor.0, minor.1);
    let file_name = dll.file_name().unwrap_or_default().to_string_lossy();
    let evidence = format!("its DLL is named {file_name}");
    refuse_build(named, &version, build, &evidence, supports)?;
    Ok(version)
}

/// Refuses an installation without its standard library, which CPython would
/// only report after it started (as "init_fs_encoding: failed to get the
/// Python codec"), naming where it was looked for.
fn checked(named: &Path, installation: Installation) -> Result<Installation, LocateError> {
    let home = installation.home.as_deref().unwrap_or(Path::new("."));
    if !has_standard_library(home, installation.minor) {
        return Err(not_python(
            named,
            &format!(
                "its standard library is missing (neither {} nor {} exists)",
                home.join("Lib").join("os.py").display(),
                home.join(format!(
                    "python{}{}.zip",
                    installation.minor.0, installation.minor.1
                ))
                .display()
            ),
        ));
    }
    Ok(installation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dll_names_give_their_version_and_build() {
        let release = Build::default();
        let name = |text: &str| dll_name(Path::new(text));
        assert_eq!(name("python313.dll"), Some(((3, 13), release)));
        assert_eq!(name("C:/x/PYTHON310.DLL"), Some(((3, 10), release)));
        assert_eq!(
            name("python314t.dll"),
            Some((
                (3, 14),
                Build {
                    free_threaded: true,
                    debug: false
                }
            ))
        );
        assert_eq!(
            name("python312_d.dll"),
            Some((
                (3, 12),
                Build {
                    free_threaded: false,
                    debug: true
                }
            ))
        );
        assert_eq!(name("python3.dll"), None);
        assert_eq!(name("python.exe"), None);
        assert_eq!(name("pythoncom313.dll"), None);
    }

    #[test]
    fn pyvenv_cfg_names_its_home() {
        assert_eq!(
            pyvenv_home(
                "include-system-site-packages = false\nHome = C:\\Python313 \nversion = 3.13.2\n"
            ),
            Some(PathBuf::from("C:\\Python313"))
        );
        assert_eq!(pyvenv_home("version = 3.13.2\n"), None);
        assert_eq!(pyvenv_home("home =\n"), None);
    }

    /// A folder laid out like an embeddable distribution, with stand-in files.
    fn embeddable(root: &Path, minor: u32, zipped: bool) -> PathBuf {
        std::fs::create_dir_all(root).unwrap();
        std::fs::write(root.join(format!("python3{minor}.dll")), b"MZ stand-in").unwrap();
        std::fs::write(root.join("python3.dll"), b"MZ forwarder").unwrap();
        std::fs::write(root.join("python.exe"), b"MZ program").unwrap();
        if zipped {
            std::fs::write(root.join(format!("python3{minor}.zip")), b"PK").unwrap();
        }
        root.to_path_buf()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pybridge-windows-layout-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_folder_a_dll_and_an_executable_of_one_distribution_find_the_same_dll() {
        let root = embeddable(&scratch("same"), 13, true);
        let dll = root.join("python313.dll");
        for named in [root.clone(), dll.clone(), root.join("python.exe")] {
            let found = locate(&named, "CPython 3.10-3.13").unwrap();
            assert_eq!(found.libpython, dll, "named {}", named.display());
            assert_eq!(found.minor, (3, 13));
            assert_eq!(found.version, "3.13");
            assert_eq!(found.home.as_deref(), Some(root.as_path()));
            assert_eq!(found.executable, Some(root.join("python.exe")));
            assert_eq!(found.venv, None);
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_venv_leads_to_its_home_installation() {
        let dir = scratch("venv");
        let base = embeddable(&dir.join("base"), 12, true);
        let venv = dir.join("venv");
        std::fs::create_dir_all(venv.join("Scripts")).unwrap();
        std::fs::write(venv.join("Scripts/python.exe"), b"MZ launcher").unwrap();
        std::fs::write(
            venv.join("pyvenv.cfg"),
            format!("home = {}\nversion = 3.12.9\n", base.display()),
        )
        .unwrap();
        for named in [venv.clone(), venv.join("Scripts/python.exe")] {
            let found = locate(&named, "CPython 3.12").unwrap();
            assert_eq!(found.libpython, base.join("python312.dll"));
            assert_eq!(found.venv.as_deref(), Some(venv.as_path()));
            assert_eq!(found.executable, Some(venv.join("Scripts/python.exe")));
            assert_eq!(found.home.as_deref(), Some(base.as_path()));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn what_cannot_run_is_refused_with_what_was_looked_for() {
        let dir = scratch("refused");
        // No standard library beside the DLL.
        let bare = embeddable(&dir.join("bare"), 13, false);
        let error = locate(&bare, "CPython 3.13").unwrap_err().0;
        assert!(error.contains("standard library is missing"), "{error}");
        assert!(error.contains("python313.zip"), "{error}");
        // A free-threaded DLL.
        let threaded = dir.join("threaded");
        std::fs::create_dir_all(&threaded).unwrap();
        std::fs::write(threaded.join("python314t.dll"), b"MZ").unwrap();
        let error = locate(&threaded.join("python314t.dll"), "CPython 3.14")
            .unwrap_err()
            .0;
        assert!(
            error.contains("free-threaded build of CPython 3.14"),
            "{error}"
        );
        // A folder without a CPython DLL, and a text file named like one.
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let error = locate(&empty, "CPython 3.13").unwrap_err().0;
        assert!(error.contains("found no python3XY.dll in"), "{error}");
        std::fs::write(empty.join("python313.dll"), b"not a DLL").unwrap();
        let error = locate(&empty.join("python313.dll"), "CPython 3.13")
            .unwrap_err()
            .0;
        assert!(error.contains("it is not a DLL"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
