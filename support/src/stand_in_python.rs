//! Stand-in Python installations for the tests of refused Pythons: a shell
//! script that answers pybridge's probe (`abi/src/python_locator.rs`) as a
//! build this machine cannot install would (free-threaded, debug,
//! static-only, newer than any core), and a fake libpython beside it.

use std::path::{Path, PathBuf};

/// Writes `dir/name`, an executable that prints the probe's marker and then
/// `key=value` for each of `answers`, whatever it is asked.
pub fn stand_in<V: AsRef<str>>(dir: &Path, name: &str, answers: &[(&str, V)]) -> PathBuf {
    let path = dir.join(name);
    let mut script = String::from("#!/bin/sh\necho pybridge-probe-1\n");
    for (key, value) in answers {
        script.push_str(&format!("echo '{key}={}'\n", value.as_ref()));
    }
    std::fs::write(&path, script).unwrap();
    let mut permissions = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&path, permissions).unwrap();
    path
}

/// A file named like a libpython that starts like an ELF file (and is not
/// one: nothing may load it before the Python is refused).
pub fn fake_libpython(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, b"\x7fELF not really").unwrap();
    path
}

/// A shared CPython `version` installed under `prefix`: `prefix/bin/<name>`
/// answers the probe with `prefix/lib/<soname>` (a fake, present) as its
/// library and `flags` (build flags such as `gil_disabled`) after the rest.
/// Returns the executable.
pub fn fake_installation(
    prefix: &Path,
    name: &str,
    version: &str,
    soname: &str,
    flags: &[(&str, &str)],
) -> PathBuf {
    let lib = prefix.join("lib");
    fake_libpython(&lib, soname);
    let bin = prefix.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let prefix_text = prefix.display().to_string();
    let mut answers = vec![
        ("implementation", "cpython".to_string()),
        ("version", version.to_string()),
        ("prefix", prefix_text.clone()),
        ("base_prefix", prefix_text),
        ("executable", bin.join(name).display().to_string()),
        ("shared", "1".to_string()),
        ("libdir", lib.display().to_string()),
        ("soname", soname.to_string()),
    ];
    answers.extend(flags.iter().map(|(key, value)| (*key, value.to_string())));
    stand_in(&bin, name, &answers)
}
