//! The crate's layers, checked. Each directory under `src/` is one layer;
//! bottom to top:
//! - `abi`: the C data types and constants, layout only;
//! - `sys`: the operating system and the loader (no pybridge state);
//! - `runtime`: process state and its rules: the gate, thread records, tokens,
//!   errors, counters, logging;
//! - `python`: everything that touches a Python object; each function that
//!   needs the GIL takes a GIL token (`Python<'py>`);
//! - `lifecycle`: the engine thread, its state machine, initialize and shutdown;
//! - `capi`: the exported `pyb_*` functions, argument checks, the panic
//!   boundary and the last-error store.
//!
//! A module names only modules of its own layer or below; within a layer the
//! module graph has no cycle; only `capi` exports symbols or keeps
//! `extern "C" fn pyb_*`, and no code in the crate calls one; `capi` never
//! touches CPython; `python` functions that take a Python object take a GIL
//! token too. Reads `src/`; no engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const LAYERS: &[&str] = &["abi", "sys", "runtime", "python", "lifecycle", "capi"];

/// One source file: its layer and its module name (`mod` for the layer's `mod.rs`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Module {
    layer: String,
    name: String,
}

impl std::fmt::Display for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "src/{}/{}.rs", self.layer, self.name)
    }
}

fn layer_rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|known| *known == layer)
}

/// Every `.rs` file under `src/` but `lib.rs`, with its text.
fn sources() -> BTreeMap<Module, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let layer = path.file_name().unwrap().to_string_lossy().into_owned();
            for file in std::fs::read_dir(&path).unwrap() {
                let file = file.unwrap().path();
                assert!(!file.is_dir(), "{} nests a directory", file.display());
                if file.extension().is_some_and(|ext| ext == "rs") {
                    let name = file.file_stem().unwrap().to_string_lossy().into_owned();
                    let text = std::fs::read_to_string(&file).unwrap();
                    sources.insert(
                        Module {
                            layer: layer.clone(),
                            name,
                        },
                        text,
                    );
                }
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            assert_eq!(
                path.file_name().unwrap(),
                "lib.rs",
                "{} is outside every layer: move it into one of {LAYERS:?}",
                path.display()
            );
        }
    }
    assert!(sources.len() > 30, "found only {} modules", sources.len());
    sources
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The crate modules `text` names: `crate::layer::module`, including each
/// module of a `crate::layer::{a, b::c}` group. A bare `crate::layer` names
/// the layer's `mod.rs`.
fn named_modules(text: &str) -> BTreeSet<Module> {
    let mut named = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        let layer = identifier(rest);
        let rest = &rest[layer.len()..];
        let names: Vec<String> = if let Some(group) = rest.strip_prefix("::{") {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            group
                .split(',')
                .map(|item| identifier(item.trim()))
                .collect()
        } else if let Some(path) = rest.strip_prefix("::") {
            vec![identifier(path)]
        } else {
            vec!["mod".to_string()]
        };
        for name in names.into_iter().filter(|name| !name.is_empty()) {
            named.insert(Module {
                layer: layer.clone(),
                name,
            });
        }
    }
    named
}

#[test]
fn every_module_names_only_its_own_layer_or_below() {
    let sources = sources();
    let mut violations = Vec::new();
    for (module, text) in &sources {
        let Some(rank) = layer_rank(&module.layer) else {
            violations.push(format!("{module} is in no layer of {LAYERS:?}"));
            continue;
        };
        for named in named_modules(text) {
            match layer_rank(&named.layer) {
                Some(other) if other > rank => violations.push(format!(
                    "{module} names crate::{}::{}, a higher layer",
                    named.layer, named.name
                )),
                _ => {}
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_module_graph_has_no_cycle() {
    let sources = sources();
    let edges: BTreeMap<&Module, BTreeSet<Module>> = sources
        .iter()
        .map(|(module, text)| {
            let mut named = named_modules(text);
            named.retain(|other| other != module && sources.contains_key(other));
            // A layer's mod.rs only declares and documents its modules.
            named.retain(|other| other.name != "mod");
            (module, named)
        })
        .collect();
    // Repeatedly remove modules that name nothing left; what remains is cyclic.
    let mut left = edges.clone();
    loop {
        let leaves: Vec<&Module> = left
            .iter()
            .filter(|(_, named)| named.iter().all(|other| !left.contains_key(other)))
            .map(|(module, _)| *module)
            .collect();
        if leaves.is_empty() {
            break;
        }
        for leaf in leaves {
            left.remove(leaf);
        }
    }
    let cyclic: Vec<String> = left.keys().map(ToString::to_string).collect();
    assert!(
        cyclic.is_empty(),
        "modules in a dependency cycle: {cyclic:?}"
    );
}

/// The lines of `text` without comments (rough: `//` to the end of a line).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(number, line)| (number + 1, line.split("//").next().unwrap_or_default()))
}

#[test]
fn only_capi_exports_symbols() {
    let mut violations = Vec::new();
    for (module, text) in &sources() {
        if module.layer == "capi" {
            continue;
        }
        for (number, code) in code_lines(text) {
            if code.contains("no_mangle") || code.contains("extern \"C\" fn pyb_") {
                violations.push(format!("{module}:{number}: {}", code.trim()));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn no_code_in_the_crate_calls_an_exported_function() {
    let sources = sources();
    let exported: BTreeSet<String> = sources
        .values()
        .flat_map(|text| {
            text.lines()
                .filter(|line| line.contains("extern \"C\" fn pyb_"))
                .filter_map(|line| {
                    let at = line.find("fn pyb_")? + "fn ".len();
                    Some(line[at..].split('(').next()?.to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(exported.len() > 40, "found only {} exports", exported.len());
    let mut calls = Vec::new();
    for (module, text) in &sources {
        for (number, code) in code_lines(text) {
            for name in &exported {
                let call = format!("{name}(");
                if code.contains(&call) && !code.contains(&format!("fn {call}")) {
                    calls.push(format!("{module}:{number}: {}", code.trim()));
                }
            }
        }
    }
    assert!(calls.is_empty(), "{}", calls.join("\n"));
}

#[test]
fn the_c_api_never_touches_cpython() {
    let mut violations = Vec::new();
    for (module, text) in &sources() {
        if module.layer != "capi" {
            continue;
        }
        for (number, code) in code_lines(text) {
            if code.contains("pyo3") || code.contains("PyObject") {
                violations.push(format!("{module}:{number}: {}", code.trim()));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// Each `fn` signature in `text`: its line and its text from `fn` to the `{`
/// or `;` that ends it.
fn signatures(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("fn ") {
        let before = text[..at].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let line = text[..at].lines().count().max(1);
        let line_text = text[..at].rsplit('\n').next().unwrap_or_default();
        if line_text.contains("//") {
            continue;
        }
        let end = text[at..]
            .find(['{', ';'])
            .map_or(text.len(), |end| at + end);
        found.push((line, text[at..end].to_string()));
    }
    found
}

#[test]
fn python_functions_that_take_an_object_take_a_gil_token() {
    let mut violations = Vec::new();
    let mut checked = 0;
    for (module, text) in &sources() {
        if module.layer != "python" {
            continue;
        }
        for (line, signature) in signatures(text) {
            let params = signature
                .split_once('(')
                .map(|(_, rest)| rest)
                .unwrap_or_default();
            // Functions CPython calls (it holds the GIL and passes no token),
            // C functions declared in `extern` blocks (no body to take one),
            // methods of a value that carries the token, and functions of
            // owned references (which carry it) are exempt.
            let entered_from_cpython = text
                .lines()
                .nth(line - 1)
                .is_some_and(|line| line.contains("extern \"C\" fn"));
            let declared_in_c = text[text
                .lines()
                .take(line - 1)
                .map(|line| line.len() + 1)
                .sum::<usize>()..]
                .split_once(&signature)
                .is_some_and(|(_, after)| after.starts_with(';'));
            if !params.contains("PyObject")
                || entered_from_cpython
                || declared_in_c
                || params.contains("self")
                || params.contains("Owned<")
            {
                continue;
            }
            checked += 1;
            if !params.contains("Python<") {
                violations.push(format!("{module}:{line}: {}", signature.trim()));
            }
        }
    }
    assert!(checked > 20, "checked only {checked} signatures");
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
