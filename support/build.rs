//! Records the Python the host programs are built against: the one the core
//! embeds, chosen the same way (pyo3's choice, from `PYO3_PYTHON`), so a C
//! host program links the libpython the core was linked to.

fn main() {
    let executable = pyo3_build_config::get()
        .executable()
        .expect("pyo3 found no Python executable; set PYO3_PYTHON")
        .to_string();
    println!("cargo:rustc-env=PYB_BUILD_PYTHON_EXECUTABLE={executable}");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-changed=build.rs");
}
