//! Generates the loader's forwarding functions from the committed C header,
//! so the loader exports exactly the header's functions with the header's
//! signatures: one source of truth (`bindings/c/pybridge.h`, itself checked
//! against the core by `tests/header.rs`).
//!
//! On Linux each generated `pyb_*` is a GNU indirect function
//! (`exported_function!` in `src/lib.rs`): a caller bound after a core was
//! loaded calls the core's function directly; one bound before goes through
//! `forward_pyb_*`, which calls the core's function, or returns
//! `PYB_E_NOT_INITIALIZED` while there is none. Windows has no indirect
//! functions: there each `pyb_*` is a plain export that calls through the
//! table `src/core.rs` fills when the core loads. Functions with other behaviour before a core is loaded are written
//! by hand in `src/exports.rs` and listed in `HAND_WRITTEN`; the table entry
//! for each is generated all the same.

use std::fmt::Write as _;
use std::path::Path;

/// Exported by `src/exports.rs`, not generated.
const HAND_WRITTEN: &[&str] = &[
    "pyb_status_name",
    "pyb_config_default",
    "pyb_engine_initialize",
    "pyb_engine_state",
    "pyb_gil_held",
    "pyb_begin_allow_threads",
    "pyb_end_allow_threads",
    "pyb_object_release",
    "pyb_last_error_message",
    "pyb_last_error_python_type",
    "pyb_last_error_python_message",
    "pyb_last_error_python_traceback",
    "pyb_last_error_python_types",
    "pyb_version",
    "pyb_python_info",
    "pyb_set_log_callback",
    "pyb_stats_get",
    "pyb_gil_stats_enable",
];

struct Function {
    name: String,
    returns: &'static str,
    params: Vec<&'static str>,
}

impl Function {
    /// The Rust function pointer type with this function's ABI.
    fn fn_type(&self) -> String {
        let returns = match self.returns {
            "()" => String::new(),
            ty => format!(" -> {ty}"),
        };
        format!(
            "unsafe extern \"C\" fn({}){returns}",
            self.params.join(", ")
        )
    }
}

/// The Rust type with the C type's ABI; pointers of any kind are pointers.
fn rust_type(c_type: &str) -> &'static str {
    let c_type = c_type.trim();
    if c_type.contains('*') {
        return "*mut ::std::ffi::c_void";
    }
    match c_type.trim_start_matches("const ").trim() {
        "pyb_status" | "int32_t" | "int" => "i32",
        "uint32_t" => "u32",
        "int64_t" => "i64",
        "uint64_t" | "pyb_object" | "pyb_gil" | "pyb_thread_token" | "pyb_interpreter"
        | "pyb_pool" | "pyb_task" | "pyb_promise" => "u64",
        "size_t" | "uintptr_t" => "usize",
        "bool" => "bool",
        "double" => "f64",
        "uint8_t" => "u8",
        // Function pointer typedefs: passed as a pointer.
        "pyb_host_fn"
        | "pyb_free_fn"
        | "pyb_log_callback"
        | "pyb_task_callback"
        | "pyb_promise_cancel_fn" => "*mut ::std::ffi::c_void",
        "void" => "()",
        other => panic!("pybridge.h uses a C type the loader does not know: {other}"),
    }
}

/// `text` without its `/* ... */` comments.
fn without_block_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        rest = rest[start..]
            .find("*/")
            .map_or("", |end| &rest[start + end + 2..]);
    }
    out.push_str(rest);
    out
}

fn parse(header: &str) -> Vec<Function> {
    let header = without_block_comments(header);
    let code: String = header
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            !line.starts_with("//") && !line.starts_with('#')
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut functions = Vec::new();
    for statement in code.split([';', '{', '}']) {
        let statement = statement.split_whitespace().collect::<Vec<_>>().join(" ");
        if statement.starts_with("typedef") || !statement.ends_with(')') {
            continue;
        }
        // `<return type> pyb_name(<params>)`: the name is the word before the first '('.
        let Some(paren) = statement.find('(') else {
            continue;
        };
        let head = statement[..paren].trim_end();
        let open = head.rfind([' ', '*']).map_or(0, |at| at + 1);
        let name = head[open..].to_string();
        if !name.starts_with("pyb_") {
            continue;
        }
        let returns = rust_type(&head[..open]);
        let inside = &statement[paren + 1..statement.len() - 1];
        let params = if inside.trim() == "void" {
            Vec::new()
        } else {
            inside
                .split(',')
                .map(|param| {
                    // Drop the parameter name: the last word, after any '*'.
                    let param = param.trim();
                    let cut = param.rfind([' ', '*']).expect("a named parameter");
                    rust_type(&param[..=cut])
                })
                .collect()
        };
        functions.push(Function {
            name,
            returns,
            params,
        });
    }
    functions
}

fn main() {
    let header_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bindings/c/pybridge.h");
    println!("cargo:rerun-if-changed={}", header_path.display());
    println!("cargo:rerun-if-changed=build.rs");
    let header = std::fs::read_to_string(&header_path).expect("bindings/c/pybridge.h");
    let functions = parse(&header);
    assert!(
        functions.len() > 40,
        "parsed only {} functions",
        functions.len()
    );
    for name in HAND_WRITTEN {
        assert!(
            functions.iter().any(|function| function.name == *name),
            "{name} is hand-written but not in the header"
        );
    }

    let mut out = String::new();
    writeln!(
        out,
        "/// The core's C API, resolved by name from the loaded core: every function"
    )
    .unwrap();
    writeln!(
        out,
        "/// of the header, so a core that lacks one is refused when it loads."
    )
    .unwrap();
    writeln!(out, "#[allow(dead_code)]").unwrap();
    writeln!(out, "pub(crate) struct CoreFunctions {{").unwrap();
    for function in &functions {
        writeln!(
            out,
            "    pub(crate) {}: {},",
            function.name,
            function.fn_type()
        )
        .unwrap();
    }
    writeln!(out, "}}\n").unwrap();
    writeln!(out, "impl CoreFunctions {{").unwrap();
    writeln!(out, "    /// Looks every function up in `library`.").unwrap();
    writeln!(
        out,
        "    pub(crate) fn resolve(library: &Library) -> Result<CoreFunctions, String> {{"
    )
    .unwrap();
    writeln!(
        out,
        "        // SAFETY: each symbol is the core's function with the header's signature."
    )
    .unwrap();
    writeln!(out, "        unsafe {{").unwrap();
    writeln!(out, "            Ok(CoreFunctions {{").unwrap();
    for function in &functions {
        writeln!(
            out,
            "                {0}: std::mem::transmute::<*mut ::std::ffi::c_void, {1}>(library.symbol(c\"{0}\")?),",
            function.name,
            function.fn_type()
        )
        .unwrap();
    }
    writeln!(out, "            }})\n        }}\n    }}\n}}\n").unwrap();
    let out_dir = std::env::var("OUT_DIR").unwrap();
    // The table, included by src/core_functions.rs; the forwarders below, by lib.rs.
    std::fs::write(Path::new(&out_dir).join("core_functions.rs"), &out).unwrap();
    out.clear();
    // GNU indirect functions exist only in ELF: Windows gets plain exports.
    let indirect = std::env::var_os("CARGO_CFG_UNIX").is_some();
    for function in functions
        .iter()
        .filter(|f| !HAND_WRITTEN.contains(&f.name.as_str()))
    {
        assert_eq!(
            function.returns, "i32",
            "{} returns something other than pyb_status: write it by hand in src/exports.rs",
            function.name
        );
        let args: Vec<String> = (0..function.params.len())
            .map(|i| format!("a{i}"))
            .collect();
        let params: Vec<String> = function
            .params
            .iter()
            .zip(&args)
            .map(|(ty, arg)| format!("{arg}: {ty}"))
            .collect();
        let name = &function.name;
        if indirect {
            writeln!(
                out,
                "/// `{name}` for a caller bound before a core was loaded: the core's function, \
                 or `PYB_E_NOT_INITIALIZED` while there is none."
            )
            .unwrap();
            writeln!(
                out,
                "unsafe extern \"C\" fn forward_{name}({}) -> i32 {{",
                params.join(", ")
            )
            .unwrap();
        } else {
            writeln!(
                out,
                "/// `{name}`: the loaded core's function, from the table filled when the \
                 core loads, or `PYB_E_NOT_INITIALIZED` while there is none."
            )
            .unwrap();
            writeln!(
                out,
                "#[unsafe(no_mangle)]\npub unsafe extern \"C\" fn {name}({}) -> i32 {{",
                params.join(", ")
            )
            .unwrap();
        }
        writeln!(out, "    match crate::core::functions() {{").unwrap();
        writeln!(
            out,
            "        // SAFETY: the core's own function, given the host's arguments unchanged.\n        Some(core) => unsafe {{ (core.{name})({}) }},",
            args.join(", ")
        )
        .unwrap();
        writeln!(
            out,
            "        None => crate::last_error::not_loaded(\"{name}\"),"
        )
        .unwrap();
        writeln!(out, "    }}\n}}\n").unwrap();
        if !indirect {
            continue;
        }
        writeln!(
            out,
            "/// Picks the code `{name}` binds a caller to (see `exported_function!`)."
        )
        .unwrap();
        writeln!(
            out,
            "extern \"C\" fn resolve_{name}() -> *mut ::std::ffi::c_void {{"
        )
        .unwrap();
        writeln!(out, "    match crate::core::functions() {{").unwrap();
        writeln!(
            out,
            "        Some(core) => core.{name} as *mut ::std::ffi::c_void,\n        None => forward_{name} as *mut ::std::ffi::c_void,"
        )
        .unwrap();
        writeln!(out, "    }}\n}}\n").unwrap();
        writeln!(out, "crate::exported_function!({name}, resolve_{name});\n").unwrap();
    }
    std::fs::write(Path::new(&out_dir).join("forward.rs"), out).unwrap();

    // The Python the package was built with: the default when the host names
    // none. A cross-build's (a Windows package made on Linux) is a path on the
    // build machine only, so it has none.
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let cross_compiling = std::env::var("TARGET").ok() != std::env::var("HOST").ok();
    let python = if cross_compiling {
        String::new()
    } else {
        std::env::var("PYO3_PYTHON").unwrap_or_default()
    };
    println!("cargo:rustc-env=PYB_BUILD_PYTHON_EXECUTABLE={python}");
}
