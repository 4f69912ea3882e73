//! Builds the C++ host programs in `tests/cpp/` with `g++ -std=c++17 -Wall
//! -Wextra -Werror -pedantic` against `bindings/cpp/pybridge.hpp`, runs each
//! under a deadline and checks its exit status and last line; then builds and
//! runs each again under AddressSanitizer (with LeakSanitizer) and
//! UndefinedBehaviorSanitizer, which must report nothing. Also checks that the
//! C++ header compiles on its own, that each part header under
//! `bindings/cpp/pybridge/` does too, and that the README shows
//! `tests/cpp/readme_example.cpp` verbatim.
//!
//! Under the sanitizers, libasan must be the first runtime loaded: the host
//! executable is instrumented and links it first, so that holds; libpybridge
//! and libpython are not instrumented, and their mallocs go through ASan's
//! interceptors like everything else. Their code has no frame pointers, so the
//! leak checker unwinds slowly (`fast_unwind_on_malloc=0`) to see the frames
//! `tests/cpp/lsan.supp` names.

use pybridge_test_support::host_programs as harness;

use std::process::Command;
use std::time::Duration;

use harness::*;

/// A host program that runs longer than this has hung (sanitized builds run
/// several times slower than plain ones).
const DEADLINE: Duration = Duration::from_secs(90);

const SANITIZE: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=undefined",
];

/// `tests/cpp/lsan.supp`, plus `tests/cpp/lsan-3.14.supp` on CPython 3.14 and
/// later (written together into `dir`: LeakSanitizer reads one file).
fn lsan_suppressions(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(repo_root().join("tests/cpp/lsan.supp")).unwrap();
    if python_at_least(3, 14) {
        text += &std::fs::read_to_string(repo_root().join("tests/cpp/lsan-3.14.supp")).unwrap();
    }
    let path = dir.join("lsan.supp");
    std::fs::write(&path, text).unwrap();
    path
}

/// Builds `tests/cpp/<name>.cpp` (sanitized or not), runs it, and returns its
/// outcome after checking that it exited with status 0 within the deadline,
/// printed `last_line` last and, sanitized, that no sanitizer reported anything.
fn build_and_run(name: &str, last_line: &str, sanitized: bool) -> Outcome {
    let source = format!("tests/cpp/{name}.cpp");
    let tag = if sanitized { "asan" } else { "plain" };
    let dir = work_dir(&format!("cpp-{name}-{tag}"));
    let extra: &[&str] = if sanitized { SANITIZE } else { &[] };
    let exe = build_cpp_program(&source, &dir, "-O1", extra, name)
        .unwrap_or_else(|output| panic!("{output}"));
    let env: Vec<(&str, String)> = if sanitized {
        let suppressions = lsan_suppressions(&dir);
        vec![
            (
                "ASAN_OPTIONS",
                "detect_leaks=1:halt_on_error=1:fast_unwind_on_malloc=0:malloc_context_size=64"
                    .to_string(),
            ),
            (
                "LSAN_OPTIONS",
                format!(
                    "suppressions={}:print_suppressions=0",
                    suppressions.display()
                ),
            ),
            (
                "UBSAN_OPTIONS",
                "halt_on_error=1:print_stacktrace=1".to_string(),
            ),
        ]
    } else {
        Vec::new()
    };
    let outcome = run_with_deadline_env(&exe, &[], DEADLINE, true, &env);
    outcome.assert_finished(&format!("{source} ({tag})"), last_line);
    for report in [
        "ERROR: AddressSanitizer",
        "ERROR: LeakSanitizer",
        "runtime error:",
        "WARNING: AddressSanitizer",
    ] {
        assert!(
            !outcome.stderr.contains(report),
            "{source} ({tag}): sanitizer report {report:?}\n{}",
            outcome.describe()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn thread_pool(sanitized: bool) {
    let outcome = build_and_run("thread_pool", "thread_pool: all checks passed", sanitized);
    outcome.assert_printed(
        "thread_pool: 8 threads x 1000 rounds, 8 thread states, local.rounds = 1100 each",
    );
    println!("{}", outcome.stdout);
}

fn c_extension(sanitized: bool) {
    let outcome = build_and_run("c_extension", "c_extension: all checks passed", sanitized);
    assert!(
        outcome.stdout.lines().any(|line| line.starts_with(
            "c_extension: AllowThreads: 4 Python threads inside the C work at once (max 4)"
        )),
        "{}",
        outcome.describe()
    );
    outcome.assert_printed(
        "c_extension: C++ exceptions became pybridge.HostError with their messages",
    );
    println!("{}", outcome.stdout);
}

fn native_worker(sanitized: bool) {
    let outcome = build_and_run(
        "native_worker",
        "native_worker: all checks passed",
        sanitized,
    );
    for line in [
        "native_worker: 1000 of 1000 callbacks arrived on the worker thread",
        "native_worker: shutdown from the worker holding the GIL -> PYB_E_WOULD_DEADLOCK",
        "native_worker: host function captures freed: 1",
    ] {
        outcome.assert_printed(line);
    }
    println!("{}", outcome.stdout);
}

fn shutdown_race(sanitized: bool) {
    let outcome = build_and_run(
        "shutdown_race",
        "shutdown_race: all checks passed",
        sanitized,
    );
    outcome.assert_printed("shutdown_race: endless Python loop on a host thread -> PYB_E_PYTHON _pybridge_engine.ShutdownInterrupt",
    );
    assert!(
        outcome.stdout.lines().any(|line| line
            .starts_with("shutdown_race: shutdown from a non-initializing thread -> PYB_OK in ")),
        "{}",
        outcome.describe()
    );
    println!("{}", outcome.stdout);
}

fn raw_host_exceptions(sanitized: bool) {
    let outcome = build_and_run(
        "raw_host_exceptions",
        "raw_host_exceptions: all checks passed",
        sanitized,
    );
    outcome.assert_printed(
        "raw_host_exceptions: 2 kinds of C++ exception became pybridge.HostError, 1000 more caught",
    );
}

fn readme_example(sanitized: bool) {
    let outcome = build_and_run("readme_example", "readme_example: done", sanitized);
    outcome.assert_printed("10! = 3628800");
    outcome.assert_printed("20! = 2432902008176640000");
}

fn interpreters(sanitized: bool) {
    let outcome = build_and_run("interpreters", "interpreters: all checks passed", sanitized);
    let own_gil = outcome
        .stdout
        .contains("interpreters: 2 threads ran work() in 2 own-GIL interpreters");
    let refused = outcome
        .stdout
        .contains("interpreters: own GIL refused before CPython 3.12");
    assert!(own_gil != refused, "{}", outcome.describe());
    outcome.assert_printed(
        "interpreters: move-assigned Gil and Interpreter::Scope end the old scope once",
    );
    if own_gil {
        outcome.assert_printed(
            "interpreters: move-assigned Interpreter, Pool and Lease end the old one once",
        );
        outcome.assert_printed("interpreters: destructors wait at most destroy_timeout()");
    }
}

fn calls_and_containers(sanitized: bool) {
    build_and_run(
        "calls_and_containers",
        "calls_and_containers: all checks passed",
        sanitized,
    );
}

fn buffers(sanitized: bool) {
    build_and_run("buffers", "buffers: all checks passed", sanitized);
}

#[test]
fn buffer_views_and_shared_memory_from_cpp() {
    buffers(false);
}

#[test]
fn buffer_views_and_shared_memory_under_sanitizers() {
    buffers(true);
}

fn coroutines(sanitized: bool) {
    let outcome = build_and_run("coroutines", "coroutines: all checks passed", sanitized);
    assert!(
        outcome
            .stdout
            .contains("coroutines: 1,000 concurrent asyncio.sleep(0.1) awaited from C++ in "),
        "{}",
        outcome.describe()
    );
    outcome.assert_printed(
        "coroutines: get/wait_for inside a Gil -> PYB_E_WOULD_DEADLOCK at once; \
         wait_for times out and finds finished tasks",
    );
    outcome.assert_printed(
        "coroutines: std::future host functions awaited from Python: completed later, \
         100 gathered, ready, void, and an exception as HostError",
    );
}

fn host_api(sanitized: bool) {
    let outcome = build_and_run("host_api", "host_api: all checks passed", sanitized);
    for line in [
        "host_api: keyword arguments: 6 calls, order kept, unexpected keyword refused",
        "host_api: host objects: typed round trip, shared ownership, each destroyed once, wrong types refused",
        "host_api: share_memory: 13 item types, signed, unsigned, bool and floating",
    ] {
        outcome.assert_printed(line);
    }
}

#[test]
fn keyword_host_functions_typed_host_objects_and_shared_memory_from_cpp() {
    host_api(false);
}

#[test]
fn keyword_host_functions_typed_host_objects_and_shared_memory_under_sanitizers() {
    host_api(true);
}

#[test]
fn awaiting_coroutines_from_cpp() {
    coroutines(false);
}

#[test]
fn awaiting_coroutines_under_sanitizers() {
    coroutines(true);
}

#[test]
fn keyword_calls_and_containers_from_cpp() {
    calls_and_containers(false);
}

#[test]
fn keyword_calls_and_containers_under_sanitizers() {
    calls_and_containers(true);
}

#[test]
fn interpreters_and_pools_from_cpp() {
    interpreters(false);
}

#[test]
fn interpreters_and_pools_from_cpp_under_sanitizers() {
    interpreters(true);
}

#[test]
fn thread_pool_8_threads_1000_rounds_overlap() {
    thread_pool(false);
}

#[test]
fn thread_pool_under_sanitizers() {
    thread_pool(true);
}

#[test]
fn c_extension_allow_threads_runs_python_threads_in_parallel() {
    c_extension(false);
}

#[test]
fn c_extension_under_sanitizers() {
    c_extension(true);
}

#[test]
fn native_worker_callbacks_then_shutdown_from_the_worker() {
    native_worker(false);
}

#[test]
fn native_worker_under_sanitizers() {
    native_worker(true);
}

#[test]
fn shutdown_race_every_call_succeeds_or_has_a_documented_status() {
    shutdown_race(false);
}

#[test]
fn shutdown_race_under_sanitizers() {
    shutdown_race(true);
}

#[test]
fn cpp_exceptions_from_raw_c_host_functions_become_host_errors() {
    raw_host_exceptions(false);
}

#[test]
fn cpp_exceptions_from_raw_c_host_functions_under_sanitizers() {
    raw_host_exceptions(true);
}

#[test]
fn readme_example_runs() {
    readme_example(false);
}

#[test]
fn readme_example_under_sanitizers() {
    readme_example(true);
}

/// Uses the C++ header twice and on its own, so a missing include, a broken
/// guard or a warning inside it fails to compile. Compiled, never run.
const HPP_ALONE: &str = r#"#include "pybridge.hpp"
#include "pybridge.hpp" // twice: the include guard must hold

int hpp_check();

int hpp_check() {
    pybridge::Options options;
    options.isolated = true;
    pybridge::Engine engine = pybridge::Engine::initialize(options);
    pybridge::Object math = pybridge::import_module("math");
    pybridge::Value five = math.call_method("factorial", 5);
    math.call_method("gcd"); // no arguments: GCC 16 once warned inside the header here
    std::string text("text");
    std::vector<std::byte> bytes{std::byte{1}};
    math.call(five, math, text, std::string_view("view"), "literal", 1.5, true, bytes, nullptr);
    pybridge::Object scope = pybridge::new_scope();
    scope.set_item("k", five);
    pybridge::run("x = 1", scope, "<check>");
    int64_t x = pybridge::eval("x", scope).as<int64_t>();
    engine.register_function(
        "m", "f", [text](pybridge::Args args) { return args.at(0).to_int64() + int64_t(text.size()); },
        pybridge::GilPolicy::release);
    engine.register_function("m", "g", [](pybridge::Args) {});
    {
        pybridge::Gil gil;
        pybridge::Gil nested = std::move(gil);
        pybridge::Gil inner;
        inner = std::move(nested); // ends the inner scope, then holds the outer one
        pybridge::GilScope &scope = inner;
        (void)scope.active();
        pybridge::AllowThreads nogil;
    }
    pybridge::Interpreter sub(pybridge::Interpreter::GilMode::shared);
    sub.set_destroy_timeout(std::chrono::milliseconds(100));
    pybridge::Interpreter other;
    other = std::move(sub); // destroys the one `other` held, within its bound
    if (other.try_destroy(std::chrono::seconds(1)) != PYB_OK) {
        return pybridge::eval("1").as<uint8_t>();
    }
    try {
        engine.shutdown(std::chrono::seconds(1), pybridge::ShutdownMode::interrupt);
    } catch (const pybridge::Error &error) {
        return error.status() + int(error.python_type().size() + error.traceback().size());
    }
    return int(x + five.to_int64() + math.attr("pi").as<double>() + pybridge::stats().engines_started);
}
"#;

/// Compiles `code` (an object file only) against the C++ header.
fn compile_snippet(name: &str, code: &str) -> Result<(), String> {
    let dir = work_dir(name);
    let source = dir.join(format!("{name}.cpp"));
    std::fs::write(&source, code).unwrap();
    let object = dir.join(format!("{name}.o"));
    let mut command = Command::new("g++");
    command
        .arg("-std=c++17")
        .args(STRICT)
        .arg(format!("-I{}", cpp_header_dir().display()))
        .arg(format!("-I{}", header_dir().display()))
        .arg("-c")
        .arg(&source)
        .arg("-o")
        .arg(&object);
    let result = run_compiler(command);
    assert!(result.is_err() || object.is_file());
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn cpp_header_compiles_alone_and_twice_as_cpp17() {
    if let Err(output) = compile_snippet("hpp_alone", HPP_ALONE) {
        panic!("bindings/cpp/pybridge.hpp does not compile on its own as C++17:\n{output}");
    }
}

/// The part headers under `bindings/cpp/pybridge/`, sorted by name.
fn cpp_part_headers() -> Vec<std::path::PathBuf> {
    let mut parts: Vec<_> = std::fs::read_dir(cpp_header_dir().join("pybridge"))
        .expect("bindings/cpp/pybridge/")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "hpp"))
        .collect();
    parts.sort();
    parts
}

/// Checks `header` as a C++17 translation unit of its own (`-fsyntax-only`,
/// strict warnings), with only the C header's folder on the include path.
fn check_header_alone(header: &std::path::Path) -> Result<(), String> {
    let mut command = Command::new("g++");
    command
        .args(["-std=c++17", "-fsyntax-only"])
        .args(STRICT)
        .arg(format!("-I{}", header_dir().display()))
        .args(["-x", "c++"])
        .arg(header);
    run_compiler(command)
}

/// Each part header compiles on its own, so every part includes what it
/// uses; and the umbrella `pybridge.hpp` includes every part, so users who
/// include it alone get all of them.
#[test]
fn each_cpp_part_header_compiles_alone_and_the_umbrella_includes_it() {
    let umbrella = std::fs::read_to_string(cpp_header_dir().join("pybridge.hpp")).unwrap();
    let parts = cpp_part_headers();
    assert!(
        parts.len() >= 10,
        "bindings/cpp/pybridge/ has {} headers",
        parts.len()
    );
    for part in &parts {
        let name = part.file_name().unwrap().to_str().unwrap();
        assert!(
            umbrella.contains(&format!("#include \"pybridge/{name}\"\n")),
            "bindings/cpp/pybridge.hpp does not include pybridge/{name}"
        );
        if let Err(output) = check_header_alone(part) {
            panic!("bindings/cpp/pybridge/{name} does not compile on its own:\n{output}");
        }
    }
    // The check can fail: a part that uses what it does not include.
    let dir = work_dir("hpp_part_missing_include");
    let broken = dir.join("broken.hpp");
    std::fs::write(
        &broken,
        "#include \"pybridge.h\"\ninline std::string f() { return std::string(); }\n",
    )
    .unwrap();
    assert!(
        check_header_alone(&broken).is_err(),
        "a part without <string> compiled"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_positional_argument_after_a_keyword_does_not_compile() {
    let code = "#include \"pybridge.hpp\"\n\
                void f(const pybridge::Object &o) { o.call(pybridge::kw(\"a\", 1), 2); }\n";
    let output = compile_snippet("kw_order", code).expect_err("kw before a positional compiled");
    assert!(
        output.contains("keyword arguments (kw) must come after positional ones"),
        "{output}"
    );
}

#[test]
fn sharing_items_python_has_no_format_for_does_not_compile() {
    for (item, messages) in [
        (
            "long double",
            &["share_memory: Python has no item format for long double"][..],
        ),
        // Not arithmetic under -std=c++17 with GCC 12 (under gnu++17 it is,
        // and so under -std=c++17 with GCC 16): one assertion or the other.
        (
            "__int128",
            &[
                "share_memory needs an arithmetic item type",
                "share_memory: Python has no item format for integers wider than 64 bits",
            ][..],
        ),
    ] {
        let code = format!(
            "#include \"pybridge.hpp\"\n\
             __extension__ typedef {item} item;\n\
             pybridge::Object f(item *p) {{ return pybridge::share_memory(p, 1, false); }}\n"
        );
        let output = compile_snippet("share_wide", &code)
            .expect_err(&format!("share_memory of {item} compiled"));
        assert!(
            messages.iter().any(|message| output.contains(message)),
            "{item}: {output}"
        );
    }
}

/// The README's C++ example must be `tests/cpp/readme_example.cpp` verbatim
/// (which the tests above compile and run), inside a ```cpp block.
fn readme_shows_example(readme: &str, example: &str) -> bool {
    readme.contains(&format!("```cpp\n{example}```"))
}

#[test]
fn readme_contains_the_tested_cpp_example() {
    let example = std::fs::read_to_string(repo_root().join("tests/cpp/readme_example.cpp"))
        .expect("tests/cpp/readme_example.cpp");
    // The check itself, on a README with and without the block.
    assert!(readme_shows_example(
        &format!("# x\n\n```cpp\n{example}```\n"),
        &example
    ));
    assert!(!readme_shows_example(
        &format!("# x\n\n```c\n{example}```\n"),
        &example
    ));
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    assert!(
        readme_shows_example(&readme, &example),
        "README.md must show tests/cpp/readme_example.cpp verbatim: paste the whole file \
         between a line \"```cpp\" and a line \"```\" (the file ends with a newline, so the \
         closing fence starts its own line). The file is:\n{example}"
    );
}
