//! The CPython functions and data the built core imports (its undefined
//! dynamic symbols, read with `nm -D --undefined-only` from the
//! `libpybridge.so` Cargo built beside this test) against the C headers of the
//! CPython it is built against: none may be declared `Py_DEPRECATED(...)`
//! there, and each must still be declared at all (one that a CPython removed
//! would load on no newer version). Run it per CPython (`PYO3_PYTHON=...`):
//! each build reads its own headers.

use pybridge_test_support::host_programs as harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A declaration marked deprecated in a header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Deprecated {
    /// The version inside `Py_DEPRECATED(...)`.
    version: String,
    /// The header it is declared in, relative to the include directory.
    header: String,
}

/// The include directory of the CPython the crate is built against.
fn include_dir() -> PathBuf {
    let python = env!("PYB_BUILD_PYTHON_EXECUTABLE");
    let output = Command::new(python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['include'])",
        ])
        .output()
        .unwrap_or_else(|err| panic!("cannot run {python}: {err}"));
    assert!(
        output.status.success(),
        "{python} did not report its include dir"
    );
    let dir = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
    assert!(
        dir.join("Python.h").is_file(),
        "no Python.h in {}",
        dir.display()
    );
    dir
}

/// Every `.h` file below `dir`, sorted.
fn headers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "h") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// `text` without C comments, each whitespace run made one space, so a
/// declaration split over lines reads as one.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |end| &after[end + 2..]);
            out.push(' ');
        } else if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |end| &after[end..]);
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The text after the parenthesised group `text` starts with (`(...)`), and
/// the group's content; `None` when `text` does not start with one.
fn parenthesised(text: &str) -> Option<(&str, &str)> {
    let text = text.strip_prefix('(')?;
    let mut depth = 1;
    for (at, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some((&text[..at], text[at + 1..].trim_start()));
                }
            }
            _ => {}
        }
    }
    None
}

/// The exported names (functions and data) that `header` (its text with
/// comments removed) declares after `Py_DEPRECATED(version)` or
/// `_Py_DEPRECATED_EXTERNALLY(version)`, with that version. Static inline
/// functions, typedefs and struct fields are skipped: no library imports them.
fn deprecated_exports(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for marker in ["Py_DEPRECATED(", "Py_DEPRECATED_EXTERNALLY("] {
        let mut from = 0;
        while let Some(at) = text[from..].find(marker) {
            let start = from + at;
            from = start + marker.len();
            // A longer name ending in the marker (the second marker inside
            // `_Py_DEPRECATED_EXTERNALLY`) is not this one.
            let before = text[..start].chars().next_back();
            if before.is_some_and(|c| is_ident(c) && c != '_') {
                continue;
            }
            if before == Some('_') && marker == "Py_DEPRECATED(" {
                continue;
            }
            let Some((version, rest)) = parenthesised(&text[start + marker.len() - 1..]) else {
                continue;
            };
            let (is_function, rest) = if let Some(rest) = rest.strip_prefix("PyAPI_FUNC") {
                (true, rest)
            } else if let Some(rest) = rest.strip_prefix("PyAPI_DATA") {
                (false, rest)
            } else {
                continue;
            };
            let Some((_, mut rest)) = parenthesised(rest.trim_start()) else {
                continue;
            };
            // Attributes between the return type and the name.
            for attribute in ["_Py_NO_RETURN ", "Py_GCC_ATTRIBUTE"] {
                if let Some(after) = rest.strip_prefix(attribute) {
                    rest = match parenthesised(after.trim_start()) {
                        Some((_, after)) => after,
                        None => after.trim_start(),
                    };
                }
            }
            let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            let after = rest[name.len()..].trim_start();
            let declares = if is_function {
                after.starts_with('(')
            } else {
                after.starts_with(';') || after.starts_with('[')
            };
            if !name.is_empty() && declares {
                found.push((name, version.trim().to_string()));
            }
        }
    }
    found
}

/// Every deprecated export the headers under `dir` declare.
fn deprecated_in_headers(dir: &Path) -> BTreeMap<String, Deprecated> {
    let mut all = BTreeMap::new();
    for header in headers(dir) {
        let text = without_comments(&std::fs::read_to_string(&header).unwrap());
        let relative = header.strip_prefix(dir).unwrap().display().to_string();
        for (name, version) in deprecated_exports(&text) {
            all.insert(
                name,
                Deprecated {
                    version,
                    header: relative.clone(),
                },
            );
        }
    }
    all
}

/// The CPython symbols (`Py*`, `_Py*`) the library at `path` imports.
fn imported_python_symbols(path: &Path) -> Vec<String> {
    let output = Command::new("nm")
        .args(["-D", "--undefined-only"])
        .arg(path)
        .output()
        .unwrap_or_else(|err| panic!("cannot run nm (binutils) on {}: {err}", path.display()));
    assert!(
        output.status.success(),
        "nm -D --undefined-only {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut symbols: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        // `name@VERSION` for versioned symbols (glibc's); CPython's have none.
        .map(|symbol| symbol.split('@').next().unwrap().to_string())
        .filter(|symbol| symbol.starts_with("Py") || symbol.starts_with("_Py"))
        .collect();
    symbols.sort();
    symbols.dedup();
    symbols
}

/// Whether `name` appears as a whole word in `text`.
fn mentions(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

#[test]
fn the_parser_finds_deprecated_functions_and_data_however_they_are_laid_out() {
    let header = "\
/* Py_DEPRECATED(3.1) PyAPI_FUNC(int) InAComment(void); */
#define Py_DEPRECATED(VERSION_UNUSED) __attribute__((__deprecated__))
Py_DEPRECATED(3.9) PyAPI_FUNC(void) PyEval_InitThreads(void);
Py_DEPRECATED(3.14) PyAPI_FUNC(int)
PyOld_Split(PyObject *a,
            int b);
Py_DEPRECATED(3.14) PyAPI_FUNC(void) _Py_NO_RETURN PyThread_exit_thread(void);
Py_DEPRECATED(3.12) PyAPI_DATA(int) Py_IsolatedFlag;
_Py_DEPRECATED_EXTERNALLY(3.13) PyAPI_FUNC(PyObject *) PyExternally(PyObject *);
Py_DEPRECATED(3.14) static inline Py_hash_t _Py_HashInline(void) { return 0; }
typedef struct { Py_DEPRECATED(3.11) Py_hash_t ob_shash; } PyBytesObject;
PyAPI_FUNC(int) PyNotDeprecated(void);
";
    let mut found = deprecated_exports(&without_comments(header));
    found.sort();
    let expected: Vec<(String, String)> = [
        ("PyEval_InitThreads", "3.9"),
        ("PyExternally", "3.13"),
        ("PyOld_Split", "3.14"),
        ("PyThread_exit_thread", "3.14"),
        ("Py_IsolatedFlag", "3.12"),
    ]
    .iter()
    .map(|(name, version)| (name.to_string(), version.to_string()))
    .collect();
    assert_eq!(found, expected);
    assert!(mentions(
        "PyAPI_FUNC(int) PyList_Size(PyObject *);",
        "PyList_Size"
    ));
    assert!(!mentions(
        "PyAPI_FUNC(int) PyList_SizeOf(PyObject *);",
        "PyList_Size"
    ));
}

#[test]
fn the_core_imports_no_cpython_function_its_headers_deprecate_or_removed() {
    let include = include_dir();
    let deprecated = deprecated_in_headers(&include);
    // The headers' own deprecations are found: PyEval_InitThreads is
    // Py_DEPRECATED(3.9) in 3.10-3.15.
    assert!(
        deprecated.contains_key("PyEval_InitThreads"),
        "the parser found no Py_DEPRECATED PyEval_InitThreads in {}: {deprecated:?}",
        include.display()
    );
    let library = harness::pybridge_lib_dir().join("libpybridge.so");
    let imported = imported_python_symbols(&library);
    assert!(
        imported.iter().any(|symbol| symbol == "PyEval_SaveThread"),
        "nm found no CPython imports in {}: {imported:?}",
        library.display()
    );
    let used_deprecated: Vec<String> = imported
        .iter()
        .filter_map(|symbol| {
            deprecated.get(symbol).map(|found| {
                format!(
                    "{symbol} (Py_DEPRECATED({}) in {})",
                    found.version, found.header
                )
            })
        })
        .collect();
    let all_headers: String = headers(&include)
        .iter()
        .map(|header| without_comments(&std::fs::read_to_string(header).unwrap()))
        .collect::<Vec<_>>()
        .join("\n");
    let undeclared: Vec<&String> = imported
        .iter()
        .filter(|symbol| !mentions(&all_headers, symbol))
        .collect();
    let version = env!("PYB_BUILD_PYTHON_VERSION");
    assert!(
        used_deprecated.is_empty(),
        "{} imports CPython {version} API its headers ({}) deprecate: {}",
        library.display(),
        include.display(),
        used_deprecated.join(", ")
    );
    assert!(
        undeclared.is_empty(),
        "{} imports symbols CPython {version}'s headers ({}) no longer declare (removed?): {undeclared:?}",
        library.display(),
        include.display()
    );
    println!(
        "{} CPython symbols imported; {} deprecated exports in CPython {version}'s headers; none used",
        imported.len(),
        deprecated.len()
    );
}
