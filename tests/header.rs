//! The committed C header must be exactly what cbindgen generates from the
//! current sources, and the export lists (`packaging/loader.map` for Linux,
//! `packaging/pybridge.def` for Windows) exactly the header's functions.
//! Regenerate all three with `PYB_BLESS=1 cargo test --test header`.

use std::path::Path;

#[test]
fn committed_header_matches_the_sources() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen failed")
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = root.join("bindings/c/pybridge.h");
    if std::env::var_os("PYB_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "bindings/c/pybridge.h is stale: run `PYB_BLESS=1 cargo test --test header` and commit it"
    );
}

/// The header's functions, in its order: the one export list. A declaration
/// is a statement (up to `;`) outside comments and preprocessor lines whose
/// word before its first `(` is a `pyb_` name; typedefs are skipped.
fn header_functions(header: &str) -> Vec<String> {
    let mut code = String::new();
    let mut rest = header;
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        rest = rest[start..]
            .find("*/")
            .map_or("", |end| &rest[start + end + 2..]);
    }
    code.push_str(rest);
    let code: Vec<&str> = code
        .lines()
        .filter(|line| !line.trim_start().starts_with(['#', '/']))
        .collect();
    code.join(" ")
        .split([';', '{', '}'])
        .map(str::trim)
        .filter(|statement| !statement.starts_with("typedef"))
        .filter_map(|statement| {
            let head = statement[..statement.find('(')?].trim_end();
            let name = &head[head.rfind([' ', '*']).map_or(0, |at| at + 1)..];
            name.starts_with("pyb_").then(|| name.to_string())
        })
        .collect()
}

/// What the packaged loader exports, made from the header's functions:
/// `packaging/loader.map`, the ELF version script `scripts/package.sh` links
/// `libpybridge.so` with, and `packaging/pybridge.def`, the module definition
/// that names a Windows DLL's exports. Regenerated with the header.
#[test]
fn committed_export_lists_match_the_header() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read_to_string(root.join("bindings/c/pybridge.h")).unwrap();
    let functions = header_functions(&header);
    assert!(
        functions.len() > 40 && functions.iter().any(|name| name == "pyb_engine_initialize"),
        "found only {functions:?}"
    );
    let note = "generated from bindings/c/pybridge.h by tests/header.rs \
                (PYB_BLESS=1 cargo test --test header)";
    let map = format!(
        "/* libpybridge.so exports the C API of pybridge.h and nothing else; {note}. */\n\
         {{\n  global:\n{}  local:\n    *;\n}};\n",
        functions
            .iter()
            .map(|name| format!("    {name};\n"))
            .collect::<String>()
    );
    let def = format!(
        "; pybridge.dll exports the C API of pybridge.h and nothing else; {note}.\n\
         LIBRARY pybridge.dll\nEXPORTS\n{}",
        functions
            .iter()
            .map(|name| format!("    {name}\n"))
            .collect::<String>()
    );
    let mut stale = Vec::new();
    for (relative, generated) in [
        ("packaging/loader.map", map),
        ("packaging/pybridge.def", def),
    ] {
        let path = root.join(relative);
        if std::env::var_os("PYB_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        if std::fs::read_to_string(&path).unwrap_or_default() != generated {
            stale.push(relative);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} stale: run `PYB_BLESS=1 cargo test --test header` and commit them"
    );
}
