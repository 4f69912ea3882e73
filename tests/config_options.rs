//! Each `pyb_config` option, checked from inside the Python it started, with
//! exact values, on every CPython pybridge builds against (3.10-3.15): the
//! program name and `sys.argv` pybridge gives CPython, `python_home`,
//! `module_search_paths` (first, in order), and `PYB_CONFIG_ISOLATED` against
//! the default (environment variables, the user site directory, the current
//! directory). `virtual_env` and `previous_threads_timeout_ms` are in
//! `tests/engine_lifecycle.rs`, `python` in `tests/python_choice.rs`,
//! `PYB_CONFIG_IGNORE_SIGPIPE` in `tests/c_programs.rs`.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pybridge::config::*;
use pybridge::engine::*;
use pybridge::status::*;

const LIMIT: Duration = Duration::from_secs(60);

fn default_config() -> pyb_config {
    let mut config = unsafe { std::mem::zeroed() };
    ok(unsafe { pyb_config_default(&mut config) });
    config
}

fn initialize_with(config: &pyb_config) -> pyb_status {
    unsafe { pyb_engine_initialize(config) }
}

/// `repr()` of a Python expression evaluated in `__main__` (`sys`, `os` and
/// `site` imported), for exact comparisons with readable failures.
#[track_caller]
fn python_repr(expr: &str) -> String {
    exec("import os, site, sys");
    eval_text(&format!("repr({expr})"))
}

/// A Python `repr()` of a list of strings.
fn repr_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("'{item}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Asks the build's Python itself for `expr` (printed).
fn build_python_says(expr: &str) -> String {
    let output = Command::new(env!("PYB_BUILD_PYTHON_EXECUTABLE"))
        .args(["-I", "-c", &format!("import os, sys; print({expr})")])
        .output()
        .unwrap();
    assert!(output.status.success(), "{expr}: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// A fresh directory for this test process.
fn fresh_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pybridge-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn argv_is_one_empty_string_and_the_program_is_the_build_python() {
    within(LIMIT, "argv and program name", || {
        initialize();
        // pybridge passes no arguments (parse_argv off): CPython's rule for an
        // empty argv is sys.argv == [''].
        assert_eq!(python_repr("sys.argv"), "['']");
        assert_eq!(python_repr("sys.orig_argv"), "[]");
        // The program name is the build's Python, so sys.executable and the
        // prefixes are that Python's, never the host's executable.
        assert_eq!(
            python_repr("sys.executable"),
            format!("'{}'", build_python_says("sys.executable"))
        );
        assert_eq!(
            python_repr("sys.base_prefix"),
            format!("'{}'", build_python_says("sys.base_prefix"))
        );
        assert_eq!(python_repr("sys.flags.isolated"), "0");
        ok(shutdown(10_000, 0));
    });
}

/// `pyb_config.argv` is `sys.argv` exactly as given: options are not parsed
/// out (`-c`, `-m` stay), non-ASCII text arrives intact, and the program
/// CPython runs as is still the chosen Python, whatever `argv[0]` says.
#[test]
fn argv_is_sys_argv_as_given_and_changes_no_prefix() {
    within(LIMIT, "argv as given", || {
        let args = [c("host-app"), c("-c"), c("print(1)"), c("-m"), c("été")];
        let pointers: Vec<*const std::ffi::c_char> = args.iter().map(|arg| arg.as_ptr()).collect();
        let mut config = default_config();
        config.argv = pointers.as_ptr();
        config.argv_len = pointers.len();
        ok(initialize_with(&config));
        assert_eq!(
            python_repr("sys.argv"),
            "['host-app', '-c', 'print(1)', '-m', 'été']"
        );
        assert_eq!(
            python_repr("sys.executable"),
            format!("'{}'", build_python_says("sys.executable"))
        );
        ok(shutdown(10_000, 0));
        // A NULL array with a length is refused, and nothing starts.
        config.argv = std::ptr::null();
        config.argv_len = 2;
        expect(initialize_with(&config), PYB_E_NULL_ARGUMENT);
        assert!(last_error().contains("pyb_config.argv"), "{}", last_error());
        assert_eq!(pyb_engine_state(), PYB_STATE_UNINITIALIZED);
    });
}

#[test]
fn python_home_is_where_the_standard_library_comes_from() {
    within(LIMIT, "python_home", || {
        // A home of our own: lib/pythonX.Y is a symbolic link to the build
        // Python's standard library, so only python_home can lead CPython here.
        let home = fresh_dir("home");
        let stdlib = PathBuf::from(build_python_says("os.path.dirname(os.__file__)"));
        let lib_name = stdlib.file_name().unwrap().to_str().unwrap().to_string();
        std::fs::create_dir_all(home.join("lib")).unwrap();
        std::os::unix::fs::symlink(&stdlib, home.join("lib").join(&lib_name)).unwrap();
        let home_c = c(text(&home));
        let mut config = default_config();
        config.python_home = home_c.as_ptr();
        ok(initialize_with(&config));
        let quoted = |path: &Path| format!("'{}'", text(path));
        assert_eq!(python_repr("sys.prefix"), quoted(&home));
        assert_eq!(python_repr("sys.exec_prefix"), quoted(&home));
        assert_eq!(python_repr("sys.base_prefix"), quoted(&home));
        assert_eq!(
            python_repr("os.__file__"),
            quoted(&home.join("lib").join(&lib_name).join("os.py"))
        );
        // The standard library and its extension modules come from the home
        // (what follows them, site-packages or Debian's dist-packages, varies).
        let lib = home.join("lib").join(&lib_name);
        let dynload = lib.join("lib-dynload");
        let in_home = [text(&lib), text(&dynload)];
        assert_eq!(
            python_repr(&format!("[p for p in sys.path if p in {in_home:?}]")),
            repr_list(&in_home)
        );
        let real_prefix = build_python_says("sys.base_prefix");
        assert_eq!(
            python_repr(&format!(
                "[p for p in sys.path if p.startswith({:?})]",
                format!("{real_prefix}/")
            )),
            "[]",
            "nothing from the build Python's own prefix"
        );
        ok(shutdown(10_000, 0));
        let _ = std::fs::remove_dir_all(&home);
    });
}

/// Starting from a home without a standard library is refused before CPython
/// sees it: CPython, once failed, could not start again in this process
/// (3.11.7: "error reading frozen getpath.py" on the next, good, start).
fn a_home_without_a_standard_library_is_refused(source: &str, config: &pyb_config, home: &Path) {
    expect(initialize_with(config), PYB_E_INIT_FAILED);
    let message = last_error();
    for part in [
        format!(
            "{source} {:?} holds no standard library of CPython ",
            text(home)
        ),
        "Python was not started".to_string(),
    ] {
        assert!(message.contains(&part), "no {part:?} in: {message}");
    }
    assert_eq!(pyb_engine_state(), PYB_STATE_UNINITIALIZED);
    assert_eq!(stats().engines_started, 0);
}

#[test]
fn a_python_home_without_a_standard_library_is_refused_and_python_can_still_start() {
    within(LIMIT, "bad python_home", || {
        let home = fresh_dir("empty-home");
        let home_c = c(text(&home));
        let mut config = default_config();
        config.python_home = home_c.as_ptr();
        a_home_without_a_standard_library_is_refused("pyb_config.python_home", &config, &home);
        initialize();
        assert_eq!(eval_i64("6 * 7"), 42);
        ok(shutdown(10_000, 0));
        let _ = std::fs::remove_dir_all(&home);
    });
}

#[test]
fn a_pythonhome_without_a_standard_library_is_refused_unless_isolated() {
    within(LIMIT, "bad PYTHONHOME", || {
        let home = fresh_dir("empty-pythonhome");
        // SAFETY: set before the engine (or any other thread of this test
        // process, which nextest runs alone) reads the environment.
        unsafe { std::env::set_var("PYTHONHOME", &home) };
        a_home_without_a_standard_library_is_refused("PYTHONHOME", &default_config(), &home);
        let mut config = default_config();
        config.flags = PYB_CONFIG_ISOLATED;
        ok(initialize_with(&config));
        assert_eq!(python_repr("sys.flags.ignore_environment"), "1");
        ok(shutdown(10_000, 0));
        let _ = std::fs::remove_dir_all(&home);
    });
}

/// Three directories, each with `same.py` saying which it is.
fn three_path_dirs(tag: &str) -> Vec<PathBuf> {
    let root = fresh_dir(tag);
    (1..=3)
        .map(|n| {
            let dir = root.join(format!("dir{n}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("same.py"), format!("WHICH = {n}\n")).unwrap();
            dir
        })
        .collect()
}

fn search_paths_come_first_in_order(flags: u32) {
    let dirs = three_path_dirs(&format!("paths-{flags}"));
    let names: Vec<_> = dirs.iter().map(|dir| c(text(dir))).collect();
    let pointers: Vec<_> = names.iter().map(|name| name.as_ptr()).collect();
    let mut config = default_config();
    config.flags = flags;
    config.module_search_paths = pointers.as_ptr();
    config.module_search_paths_len = pointers.len();
    ok(initialize_with(&config));
    let texts: Vec<&str> = dirs.iter().map(|dir| text(dir)).collect();
    assert_eq!(python_repr("sys.path[:3]"), repr_list(&texts));
    for dir in &texts {
        assert_eq!(python_repr(&format!("sys.path.count({dir:?})")), "1");
    }
    exec("import same");
    assert_eq!(python_repr("same.WHICH"), "1", "the first path wins");
    ok(shutdown(10_000, 0));
    let _ = std::fs::remove_dir_all(dirs[0].parent().unwrap());
}

#[test]
fn module_search_paths_come_first_in_the_given_order() {
    within(LIMIT, "search paths", || {
        search_paths_come_first_in_order(0)
    });
}

#[test]
fn module_search_paths_come_first_in_the_given_order_when_isolated() {
    within(LIMIT, "search paths isolated", || {
        search_paths_come_first_in_order(PYB_CONFIG_ISOLATED)
    });
}

/// A PYTHONPATH directory, PYTHONOPTIMIZE=2, PYTHONDONTWRITEBYTECODE=1 and a
/// PYTHONUSERBASE whose user site directory exists, in this process's
/// environment; returns the PYTHONPATH directory and the user site directory.
fn python_environment(tag: &str) -> (PathBuf, PathBuf) {
    let root = fresh_dir(tag);
    let from_env = root.join("pythonpath");
    std::fs::create_dir_all(&from_env).unwrap();
    std::fs::write(from_env.join("from_env.py"), "X = 7\n").unwrap();
    let user_base = root.join("userbase");
    let short = build_python_says("'%d.%d' % sys.version_info[:2]");
    let user_site = user_base.join(format!("lib/python{short}/site-packages"));
    std::fs::create_dir_all(&user_site).unwrap();
    // SAFETY: set before the engine (or any other thread of this test
    // process, which nextest runs alone) reads the environment.
    unsafe {
        std::env::set_var("PYTHONPATH", &from_env);
        std::env::set_var("PYTHONOPTIMIZE", "2");
        std::env::set_var("PYTHONDONTWRITEBYTECODE", "1");
        std::env::set_var("PYTHONUSERBASE", &user_base);
        std::env::remove_var("PYTHONNOUSERSITE");
        std::env::remove_var("PYTHONSAFEPATH");
    }
    (from_env, user_site)
}

#[test]
fn isolated_ignores_python_variables_the_user_site_and_the_current_directory() {
    within(LIMIT, "isolated", || {
        let (from_env, user_site) = python_environment("isolated");
        let mut config = default_config();
        config.flags = PYB_CONFIG_ISOLATED;
        ok(initialize_with(&config));
        assert_eq!(python_repr("sys.flags.isolated"), "1");
        assert_eq!(python_repr("sys.flags.ignore_environment"), "1");
        assert_eq!(python_repr("sys.flags.no_user_site"), "1");
        assert_eq!(
            python_repr("sys.flags.optimize"),
            "0",
            "PYTHONOPTIMIZE ignored"
        );
        assert_eq!(
            python_repr("sys.flags.dont_write_bytecode"),
            "0",
            "PYTHONDONTWRITEBYTECODE ignored"
        );
        assert_eq!(python_repr("site.ENABLE_USER_SITE"), "False");
        assert_eq!(
            python_repr(&format!("{:?} in sys.path", text(&from_env))),
            "False"
        );
        assert_eq!(
            python_repr(&format!("{:?} in sys.path", text(&user_site))),
            "False"
        );
        assert_eq!(
            python_repr("'' in sys.path or os.getcwd() in sys.path"),
            "False"
        );
        assert_eq!(
            python_repr("__import__('importlib.util').util.find_spec('from_env')"),
            "None"
        );
        ok(shutdown(10_000, 0));
        let _ = std::fs::remove_dir_all(from_env.parent().unwrap());
    });
}

#[test]
fn without_isolation_python_variables_and_the_user_site_count() {
    within(LIMIT, "not isolated", || {
        let (from_env, user_site) = python_environment("not-isolated");
        initialize();
        assert_eq!(python_repr("sys.flags.isolated"), "0");
        assert_eq!(python_repr("sys.flags.ignore_environment"), "0");
        assert_eq!(python_repr("sys.flags.no_user_site"), "0");
        assert_eq!(python_repr("sys.flags.optimize"), "2");
        assert_eq!(python_repr("sys.flags.dont_write_bytecode"), "1");
        assert_eq!(python_repr("site.ENABLE_USER_SITE"), "True");
        assert_eq!(python_repr("sys.path[0]"), format!("'{}'", text(&from_env)));
        assert_eq!(
            python_repr(&format!("{:?} in sys.path", text(&user_site))),
            "True"
        );
        // No script, so no script directory (or '') goes first.
        assert_eq!(
            python_repr("'' in sys.path or os.getcwd() in sys.path"),
            "False"
        );
        exec("import from_env");
        assert_eq!(python_repr("from_env.X"), "7");
        ok(shutdown(10_000, 0));
        let _ = std::fs::remove_dir_all(from_env.parent().unwrap());
    });
}
