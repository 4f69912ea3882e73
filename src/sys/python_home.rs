//! Where a Python home keeps the standard library: CPython's own landmarks
//! (getpath.py, 3.11-3.15), which differ between a POSIX layout
//! (`<prefix>/lib/python3.X/os.py`) and a Windows one (`<prefix>\Lib\os.py`,
//! or the embeddable distribution's `<prefix>\python3X.zip`).

use std::path::Path;

/// Looks for the standard library of CPython `major`.`minor` in `home`;
/// `Err` says what was looked for (for a message: "no <that> under it").
#[cfg(unix)]
pub(crate) fn find_standard_library(home: &str, major: &str, minor: &str) -> Result<(), String> {
    // A home may be "prefix:exec_prefix"; the standard library is in the prefix.
    let prefix = Path::new(home.split(':').next().unwrap_or_default());
    // <platlibdir>/pythonX.Y/os.py or os.pyc, or <platlibdir>/pythonXY.zip;
    // platlibdir is "lib" on most systems, "lib64" on Fedora, whatever a
    // build chose elsewhere: any directory.
    let landmarks = [
        format!("python{major}.{minor}/os.py"),
        format!("python{major}.{minor}/os.pyc"),
        format!("python{major}{minor}.zip"),
    ];
    let found = std::fs::read_dir(prefix).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            landmarks
                .iter()
                .any(|landmark| entry.path().join(landmark).exists())
        })
    });
    if found {
        return Ok(());
    }
    Err(format!("lib/{} or lib/{}", landmarks[0], landmarks[2]))
}

/// Looks for the standard library of CPython `major`.`minor` in `home`;
/// `Err` says what was looked for. A Windows home is one folder (its drive
/// letter has the only colon): `Lib\os.py` (an installation) or
/// `python3XY.zip` (the embeddable distribution).
#[cfg(windows)]
pub(crate) fn find_standard_library(home: &str, major: &str, minor: &str) -> Result<(), String> {
    let prefix = Path::new(home);
    let zip = format!("python{major}{minor}.zip");
    let found = prefix.join("Lib").join("os.py").is_file()
        || prefix.join("Lib").join("os.pyc").is_file()
        || prefix.join(&zip).is_file();
    if found {
        return Ok(());
    }
    Err(format!("Lib\\os.py or {zip}"))
}
