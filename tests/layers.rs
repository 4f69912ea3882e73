//! The crate's layers, checked. Each directory under `src/` is one layer;
//! bottom to top:
//! - `sys`: the operating system and the loader (no pybridge state);
//! - `runtime`: process state and its rules: the gate, thread records, tokens,
//!   errors, counters, logging;
//! - `python`: everything that touches a Python object; each function that
//!   needs the GIL takes a GIL token (`Python<'py>`, or one naming its interpreter);
//! - `lifecycle`: the engine thread, its state machine, initialize and shutdown;
//! - `capi`: the exported `pyb_*` functions, argument checks, the panic
//!   boundary and the last-error store.
//!
//! Under them all is `abi`: the `pybridge-abi` crate (`abi/`: the C data
//! types and constants, the copy into host buffers, the rule for choosing a
//! Python), which the core names as `crate::abi` and the packaged loader as
//! `pybridge_abi`. It depends on nothing of either and names only itself.
//!
//! A module names only modules of its own layer or below; within a layer the
//! module graph has no cycle; only `capi` exports symbols or keeps
//! `extern "C" fn pyb_*`, and no code in the crate calls one; `capi` never
//! touches CPython; `python` functions that take a Python object take a GIL
//! token too. Reads `src/`; no engine. A module "names" another through any
//! path in its code: `crate::`, `self::` and `super::` paths, in `use`
//! declarations (grouped and nested too) or inline; comments and string
//! literals are skipped. The abi crate and the packaged loader (`loader/src/`)
//! are checked for module cycles too, and no source file borrows another
//! crate's file with `#[path]`. Nothing above `sys` names a platform.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The core's name for the `pybridge-abi` crate (`use pybridge_abi as abi;`
/// in `src/lib.rs`): the layer below all of `src/`.
const ABI: &str = "abi";

const LAYERS: &[&str] = &[ABI, "sys", "runtime", "python", "lifecycle", "capi"];

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
            assert_ne!(
                layer,
                ABI,
                "{} is back: the C types live in the pybridge-abi crate (abi/src/)",
                path.display()
            );
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

/// `text` with its comments, string literals and character literals blanked
/// out (newlines kept), so that only code is searched for paths.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut code = String::with_capacity(text.len());
    let mut at = 0;
    let blank = |code: &mut String, skipped: &[char]| {
        code.extend(skipped.iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
    };
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while at < chars.len() {
        let rest = &chars[at..];
        let after_ident = at > 0 && ident_char(chars[at - 1]);
        let end = if rest.starts_with(&['/', '/']) {
            rest.iter().position(|&c| c == '\n').unwrap_or(rest.len())
        } else if rest.starts_with(&['/', '*']) {
            // Block comments nest in Rust.
            let (mut depth, mut i) = (0, 0);
            loop {
                if i >= rest.len() {
                    break rest.len();
                } else if rest[i..].starts_with(&['/', '*']) {
                    depth += 1;
                    i += 2;
                } else if rest[i..].starts_with(&['*', '/']) {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break i;
                    }
                } else {
                    i += 1;
                }
            }
        } else if rest[0] == 'r'
            && !after_ident
            && rest[1..].iter().take_while(|&&c| c == '#').count() + 1 < rest.len()
            && rest[1 + rest[1..].iter().take_while(|&&c| c == '#').count()] == '"'
        {
            // A raw string: r"..." or r#"..."#, ended by the quote and as many #.
            let hashes = rest[1..].iter().take_while(|&&c| c == '#').count();
            let mut i = 2 + hashes;
            loop {
                if i >= rest.len() {
                    break rest.len();
                }
                if rest[i] == '"'
                    && rest[i + 1..].iter().take_while(|&&c| c == '#').count() >= hashes
                {
                    break i + 1 + hashes;
                }
                i += 1;
            }
        } else if rest[0] == '"' {
            let mut i = 1;
            while i < rest.len() && rest[i] != '"' {
                i += if rest[i] == '\\' { 2 } else { 1 };
            }
            (i + 1).min(rest.len())
        } else if rest[0] == '\'' && rest.get(1) == Some(&'\\') {
            // An escaped character literal: '\n', '\'', '\u{..}'.
            rest[2..]
                .iter()
                .position(|&c| c == '\'')
                .map_or(1, |i| i + 3)
        } else if rest[0] == '\'' && rest.get(2) == Some(&'\'') {
            3
        } else {
            code.push(rest[0]);
            at += 1;
            continue;
        };
        blank(&mut code, &rest[..end]);
        at += end;
    }
    code
}

/// The tokens of `code`: identifiers, `::`, and single punctuation characters.
fn tokens(code: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut at = 0;
    let bytes = code.as_bytes();
    while at < bytes.len() {
        let c = bytes[at];
        if c.is_ascii_alphanumeric() || c == b'_' {
            let len = identifier(&code[at..]).len();
            found.push(&code[at..at + len]);
            at += len;
        } else if code[at..].starts_with("::") {
            found.push("::");
            at += 2;
        } else if c.is_ascii_whitespace() || !c.is_ascii() {
            at += code[at..].chars().next().map_or(1, char::len_utf8);
        } else {
            found.push(&code[at..at + 1]);
            at += 1;
        }
    }
    found
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Reads one use tree from `tokens[*at..]` (`a::b`, `a::{b, c::{self, d}}`,
/// `a::*`, `a as b`) and appends every path it imports, after `prefix`.
fn use_tree(tokens: &[&str], at: &mut usize, prefix: Vec<String>, paths: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    while let Some(&token) = tokens.get(*at) {
        *at += 1;
        match token {
            "::" => continue,
            "{" => {
                while tokens.get(*at).is_some_and(|&token| token != "}") {
                    use_tree(tokens, at, path.clone(), paths);
                    if tokens.get(*at) == Some(&",") {
                        *at += 1;
                    }
                }
                *at += 1;
                return;
            }
            "*" => break,
            name if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') => {
                // `{self, ...}` names the path before the group.
                if name != "self" || path.is_empty() {
                    path.push(name.to_string());
                }
                match tokens.get(*at) {
                    Some(&"::") => continue,
                    Some(&"as") => *at += 2,
                    _ => {}
                }
                break;
            }
            _ => {
                *at -= 1;
                break;
            }
        }
    }
    paths.push(path);
}

/// Where `path` leads from the module at `position` (its path from the crate
/// root), as a path from the crate root; `None` for paths that start outside
/// the crate (`std::`, `pyo3::`, a local name).
fn resolve(position: &[String], path: &[String]) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut from: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => position.to_vec(),
        "super" => position[..position.len().saturating_sub(1)].to_vec(),
        _ => return None,
    };
    for segment in rest {
        if segment == "super" {
            from.pop();
        } else {
            from.push(segment.clone());
        }
    }
    Some(from)
}

/// Every path into the crate that `text` (the file at `position`) names, from
/// the crate root: each path of each `use` (grouped, nested, `self`, `super`,
/// globs), and each `crate::`, `self::` or `super::` path in code, relative to
/// the inline module (`mod tests { ... }`) it appears in. Comments and string
/// literals are not code.
fn named_paths(position: &[String], text: &str) -> BTreeSet<Vec<String>> {
    let code = code_only(text);
    let tokens = tokens(&code);
    let mut named = BTreeSet::new();
    // The inline modules open here: (name, brace depth inside them).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut at = 0;
    while at < tokens.len() {
        let here: Vec<String> = position
            .iter()
            .cloned()
            .chain(inline.iter().map(|(name, _)| name.clone()))
            .collect();
        match tokens[at] {
            "{" => depth += 1,
            "}" => {
                if inline.last().is_some_and(|(_, inside)| *inside == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            "mod" if tokens.get(at + 2) == Some(&"{") => {
                depth += 1;
                inline.push((tokens[at + 1].to_string(), depth));
                at += 3;
                continue;
            }
            "use" => {
                let mut paths = Vec::new();
                at += 1;
                use_tree(&tokens, &mut at, Vec::new(), &mut paths);
                named.extend(paths.iter().filter_map(|path| resolve(&here, path)));
                continue;
            }
            "crate" | "self" | "super" if tokens.get(at + 1) == Some(&"::") => {
                let mut path = vec![tokens[at].to_string()];
                while tokens.get(at + 1) == Some(&"::")
                    && tokens.get(at + 2).is_some_and(|token| {
                        token.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    })
                {
                    path.push(tokens[at + 2].to_string());
                    at += 2;
                }
                named.extend(resolve(&here, &path));
            }
            _ => {}
        }
        at += 1;
    }
    named
}

/// The path from the crate root of the file `module` is.
fn position(module: &Module) -> Vec<String> {
    if module.name == "mod" {
        vec![module.layer.clone()]
    } else {
        vec![module.layer.clone(), module.name.clone()]
    }
}

/// The crate modules `text`, the source of `module`, names, by any form of
/// path. A path to a layer alone names the layer's `mod.rs`; a path into the
/// crate root (`crate::SomeItem`) names no module.
fn named_modules(module: &Module, text: &str) -> BTreeSet<Module> {
    named_paths(&position(module), text)
        .into_iter()
        .filter_map(|path| match path.as_slice() {
            [] => None,
            [layer] => Some(Module {
                layer: layer.clone(),
                name: "mod".to_string(),
            }),
            [layer, name, ..] => Some(Module {
                layer: layer.clone(),
                name: name.clone(),
            }),
        })
        .collect()
}

#[test]
fn every_form_of_path_is_seen() {
    let at = |layer: &str, name: &str| Module {
        layer: layer.to_string(),
        name: name.to_string(),
    };
    let text = r##"
        use crate::runtime::{gate, error::{self, Error}, thread_slot as slot};
        use crate::{abi::status::*, sys};
        use super::owned::Owned;
        use self::inner::Thing;
        use std::sync::Mutex;
        use pyo3::ffi::{self, PyObject};
        // use crate::capi::commented;
        const TEXT: &str = "crate::capi::in_a_string";
        const RAW: &str = r#"super::in_a_raw_string"#;
        const QUOTE: char = '"';
        fn f<'a>(x: &'a u8) { crate::lifecycle::state::get(); super::super::capi::x::y(); }
        #[cfg(test)]
        mod tests {
            use super::*;
            use super::super::handles;
        }
        pub(super) fn g() {}
    "##;
    let named = named_modules(&at("python", "call"), text);
    let expected: BTreeSet<Module> = [
        at("runtime", "gate"),
        at("runtime", "error"),
        at("runtime", "thread_slot"),
        at("abi", "status"),
        at("sys", "mod"),
        at("python", "owned"),
        at("python", "call"),
        at("lifecycle", "state"),
        at("capi", "x"),
        at("python", "handles"),
    ]
    .into_iter()
    .collect();
    assert_eq!(named, expected);
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
        for named in named_modules(module, text) {
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

/// Fails, naming the `what` that lie on a cycle or lead into one, unless the
/// graph `edges` (each node with the nodes it names) has no cycle.
fn assert_no_cycle<T: Ord + Clone>(
    edges: &BTreeMap<T, BTreeSet<T>>,
    what: &str,
    show: impl Fn(&T) -> String,
) {
    // Repeatedly remove nodes that name nothing left; what remains is cyclic.
    let mut left = edges.clone();
    loop {
        let leaves: Vec<T> = left
            .iter()
            .filter(|(_, named)| named.iter().all(|other| !left.contains_key(other)))
            .map(|(node, _)| node.clone())
            .collect();
        if leaves.is_empty() {
            break;
        }
        for leaf in leaves {
            left.remove(&leaf);
        }
    }
    let cyclic: Vec<String> = left.keys().map(show).collect();
    assert!(
        cyclic.is_empty(),
        "{what} in a dependency cycle: {cyclic:?}"
    );
}

#[test]
fn the_module_graph_has_no_cycle() {
    let sources = sources();
    let edges: BTreeMap<Module, BTreeSet<Module>> = sources
        .iter()
        .map(|(module, text)| {
            let mut named = named_modules(module, text);
            named.retain(|other| other != module && sources.contains_key(other));
            // A layer's mod.rs only declares and documents its modules.
            named.retain(|other| other.name != "mod");
            (module.clone(), named)
        })
        .collect();
    assert_no_cycle(&edges, "modules", ToString::to_string);
}

/// The modules of the crate whose sources are in `dir` (relative to the
/// repository), by name, with their text; `lib.rs` is the crate root, left out.
fn crate_sources(dir: &str) -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        assert!(!path.is_dir(), "{} nests a directory", path.display());
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.extension().is_some_and(|ext| ext == "rs") && name != "lib" {
            sources.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    assert!(sources.len() >= 4, "found only {:?}", sources.keys());
    sources
}

/// Fails unless the modules of the crate in `dir` (`sources`, from
/// `crate_sources`) name each other without a cycle, and some name another.
fn assert_no_module_cycle(sources: &BTreeMap<String, String>, dir: &str) {
    let edges: BTreeMap<String, BTreeSet<String>> = sources
        .iter()
        .map(|(module, text)| {
            let named = named_paths(std::slice::from_ref(module), text)
                .into_iter()
                .filter_map(|path| path.first().cloned())
                .filter(|other| other != module && sources.contains_key(other))
                .collect();
            (module.clone(), named)
        })
        .collect();
    assert!(
        edges.values().any(|named| !named.is_empty()),
        "no module of {dir} names another: {edges:?}"
    );
    assert_no_cycle(&edges, &format!("{dir} modules"), |module| {
        format!("{dir}/{module}.rs")
    });
}

/// The loader's own modules (`loader/src/*.rs` but `lib.rs`). What it shares
/// with the core is the abi crate's, checked below.
fn loader_sources() -> BTreeMap<String, String> {
    crate_sources("loader/src")
}

/// The abi crate's modules (`abi/src/*.rs` but `lib.rs`).
fn abi_sources() -> BTreeMap<String, String> {
    crate_sources("abi/src")
}

/// The abi crate is shared by the core and the loader, so it may name
/// neither: every path of its code that starts at `crate::`, `self::` or
/// `super::` leads to one of its own modules, it names no other crate of the
/// workspace, and its manifest depends on none.
#[test]
fn the_abi_crate_names_only_itself() {
    let sources = abi_sources();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("abi");
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let mut violations = Vec::new();
    let files = sources
        .iter()
        .map(|(module, text)| (vec![module.clone()], format!("abi/src/{module}.rs"), text))
        .chain([(Vec::new(), "abi/src/lib.rs".to_string(), &lib)]);
    for (position, file, text) in files {
        for path in named_paths(&position, text) {
            if path
                .first()
                .is_some_and(|first| !sources.contains_key(first))
            {
                violations.push(format!("{file} names crate::{}", path.join("::")));
            }
        }
        let code = code_only(text);
        let tokens = tokens(&code);
        for window in tokens.windows(2) {
            if window[0].starts_with("pybridge") && window[1] == "::" {
                violations.push(format!("{file} names {}::", window[0]));
            }
        }
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut section = "";
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section.contains("dependencies")
            && (line.starts_with("pybridge") || line.contains("path"))
        {
            violations.push(format!("abi/Cargo.toml {section} has {line}"));
        }
    }
    assert!(
        violations.is_empty(),
        "the abi crate reaches outside itself:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_abi_module_graph_has_no_cycle() {
    assert_no_module_cycle(&abi_sources(), "abi/src");
}

/// Every `.rs` file under `dir` (relative to the repository), recursively.
fn rust_files(dir: &str, found: &mut Vec<std::path::PathBuf>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let relative = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
            rust_files(&relative.to_string_lossy(), found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// Code shared between crates lives in a crate (`abi/`, `support/`) that
/// each user depends on; a file compiled into two crates with `#[path]`
/// would be checked as part of neither.
#[test]
fn no_file_is_borrowed_with_a_path_attribute() {
    let mut files = Vec::new();
    for dir in ["src", "abi", "loader", "support", "tests", "benches"] {
        rust_files(dir, &mut files);
    }
    assert!(files.len() > 60, "found only {} files", files.len());
    let mut borrowed = Vec::new();
    for file in &files {
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let tokens = tokens(&code);
        if tokens
            .windows(4)
            .any(|window| window == ["#", "[", "path", "="])
        {
            borrowed.push(file.display().to_string());
        }
    }
    assert!(
        borrowed.is_empty(),
        "#[path] borrows a file in:\n{}",
        borrowed.join("\n")
    );
}

/// The loader's crate root (`lib.rs`, and the forwarders build.rs generates
/// into it) names its modules; so no module may name an item of the root, or
/// a cycle could pass through it unseen (the generated text is not read).
#[test]
fn the_loader_module_graph_has_no_cycle() {
    let sources = loader_sources();
    let root =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("loader/src/lib.rs"))
            .unwrap();
    let root_code = code_only(&root);
    let root_tokens = tokens(&root_code);
    let declared: BTreeSet<&str> = root_tokens
        .windows(3)
        .filter(|window| window[0] == "mod" && window[2] == ";")
        .map(|window| window[1])
        .collect();
    let mut root_items = Vec::new();
    for (module, text) in &sources {
        assert!(
            declared.contains(module.as_str()),
            "loader/src/lib.rs does not declare {module}"
        );
        for path in named_paths(std::slice::from_ref(module), text) {
            if path
                .first()
                .is_some_and(|first| !declared.contains(first.as_str()))
            {
                root_items.push(format!(
                    "loader/src/{module}.rs names crate::{}",
                    path.join("::")
                ));
            }
        }
    }
    assert!(
        root_items.is_empty(),
        "items of the loader's crate root, named by its modules:\n{}",
        root_items.join("\n")
    );
    assert_no_module_cycle(&sources, "loader/src");
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

/// What names an operating system in Rust code: its C library or API crate,
/// its `std::os` module, or a `cfg` on it.
const PLATFORM_NAMES: &[&str] = &[
    "libc::",
    "windows_sys",
    "std::os::unix",
    "std::os::windows",
    "cfg(unix",
    "cfg(windows",
    "cfg!(unix",
    "cfg!(windows",
    "cfg(not(unix",
    "cfg(not(windows",
    "cfg!(not(unix",
    "cfg!(not(windows",
    "target_os",
    "target_family",
    "target_env",
];

/// Windows and Linux differ only inside `sys/`: above it every module calls
/// the same functions whatever the platform.
#[test]
fn nothing_above_sys_names_a_platform() {
    let mut violations = Vec::new();
    for (module, text) in &sources() {
        if module.layer == "sys" {
            continue;
        }
        for (number, code) in code_lines(text) {
            if PLATFORM_NAMES.iter().any(|name| code.contains(name)) {
                violations.push(format!("{module}:{number}: {}", code.trim()));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// The packaged loader likewise: of its modules only `loader/src/library.rs`
/// (the OS loader as the loader uses it) names a platform. (The crate root,
/// not read here, keeps the ELF-only `exported_function!` macro.)
#[test]
fn only_the_loaders_library_module_names_a_platform() {
    let mut violations = Vec::new();
    for (file, text) in &loader_sources() {
        if file == "library" {
            continue;
        }
        for (number, code) in code_lines(text) {
            if PLATFORM_NAMES.iter().any(|name| code.contains(name)) {
                violations.push(format!("loader/src/{file}.rs:{number}: {}", code.trim()));
            }
        }
    }
    assert!(
        loader_sources().contains_key("library"),
        "loader/src/library.rs is gone: update this test"
    );
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
            // A token naming its interpreter (`MainGil`, `InterpreterGil`) counts.
            if !["Python<", "Gil<"]
                .iter()
                .any(|token| params.contains(token))
            {
                violations.push(format!("{module}:{line}: {}", signature.trim()));
            }
        }
    }
    assert!(checked > 20, "checked only {checked} signatures");
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
