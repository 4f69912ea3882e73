//! The crate's module graph, checked: modules sit in layers, a module names
//! only modules of its own layer or below, the graph has no cycle, and no code
//! in the crate calls one of its own exported `pyb_*` functions (the C API is
//! the crate's top, never a path inside it). Reads `src/*.rs`; no engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Bottom to top. A new module must be placed here, or this test fails.
const LAYERS: &[(&str, &[&str])] = &[
    // No pybridge state and no Python objects: plain data and OS facts.
    (
        "foundation",
        &[
            "status",
            "c_buffer",
            "loader",
            "stack_check",
            "token",
            "gate",
            "owned",
            "gil_cell",
            "reinit_guard",
        ],
    ),
    // Process state and the rules around it: errors, thread records, fork,
    // configuration, counters, logging, the panic boundary.
    (
        "runtime",
        &[
            "error",
            "boundary",
            "fork",
            "thread_slot",
            "stats",
            "config",
            "logging",
        ],
    ),
    // Everything that touches CPython under the GIL.
    (
        "python",
        &[
            "exception",
            "interpreter",
            "gil",
            "handles",
            "object",
            "value",
            "call",
            "host_function",
            "info",
        ],
    ),
    // The engine thread and the lifecycle that drives all of the above.
    ("engine", &["engine"]),
];

fn sources() -> BTreeMap<String, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .filter(|(name, _)| name != "lib")
        .collect()
}

/// The crate modules `text` names as `crate::module`.
fn named_modules(text: &str) -> BTreeSet<String> {
    text.match_indices("crate::")
        .map(|(at, _)| {
            text[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

#[test]
fn every_module_names_only_its_own_layer_or_below() {
    let sources = sources();
    let mut violations = Vec::new();
    for (module, text) in &sources {
        let Some(layer) = layer_of(module) else {
            violations.push(format!("src/{module}.rs is in no layer of tests/layers.rs"));
            continue;
        };
        for named in named_modules(text) {
            if named == *module {
                continue;
            }
            match layer_of(&named) {
                Some(other) if other > layer => violations.push(format!(
                    "src/{module}.rs ({}) names crate::{named} ({})",
                    LAYERS[layer].0, LAYERS[other].0
                )),
                Some(_) => {}
                None if sources.contains_key(&named) => {
                    violations.push(format!("crate::{named} is in no layer"))
                }
                None => {}
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_module_graph_has_no_cycle() {
    let sources = sources();
    let edges: BTreeMap<&str, BTreeSet<String>> = sources
        .iter()
        .map(|(module, text)| {
            let mut named = named_modules(text);
            named.retain(|name| name != module && sources.contains_key(name));
            (module.as_str(), named)
        })
        .collect();
    // Repeatedly remove modules that name nothing left; what remains is cyclic.
    let mut left: BTreeMap<&str, BTreeSet<String>> = edges.clone();
    loop {
        let leaves: Vec<&str> = left
            .iter()
            .filter(|(_, named)| named.iter().all(|name| !left.contains_key(name.as_str())))
            .map(|(module, _)| *module)
            .collect();
        if leaves.is_empty() {
            break;
        }
        for leaf in leaves {
            left.remove(leaf);
        }
    }
    assert!(
        left.is_empty(),
        "modules in a dependency cycle: {:?}",
        left.keys().collect::<Vec<_>>()
    );
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
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for name in &exported {
                let call = format!("{name}(");
                if code.contains(&call) && !code.contains(&format!("fn {call}")) {
                    calls.push(format!("src/{module}.rs:{}: {}", number + 1, line.trim()));
                }
            }
        }
    }
    assert!(calls.is_empty(), "{}", calls.join("\n"));
}
