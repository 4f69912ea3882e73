//! The committed C header must be exactly what cbindgen generates from the
//! current sources. Regenerate with `PYB_BLESS=1 cargo test --test header`.

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
