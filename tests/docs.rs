//! The docs keep up with the tree: every source module (of the core, the abi
//! crate, the loader and the test-support crate) is in the module table
//! of `docs/architecture.md`, every test file and script in the tables of
//! `docs/testing.md`, no table names a file that is gone, every relative link
//! in `README.md` and `docs/*.md` reaches a file (and a heading, when it names
//! one), and the supported-versions table of `docs/python.md` lists exactly the
//! minors of `scripts/python-versions`, whose versions the package tests
//! (`tests/package.rs`) each run a host on. A module of `src/` over 500
//! lines says in its docs why it is one concept. A failure names the file and
//! the doc to change.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    fs::read_to_string(repo_root().join(relative))
        .unwrap_or_else(|error| panic!("cannot read {relative}: {error}"))
}

/// Files under `dir` (relative to the repository), recursively or not, whose
/// name ends with one of `extensions` (every file when empty), as
/// repository-relative paths with `/`.
fn files(dir: &str, recursive: bool, extensions: &[&str]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![repo_root().join(dir)];
    while let Some(current) = pending.pop() {
        let entries =
            fs::read_dir(&current).unwrap_or_else(|e| panic!("{}: {e}", current.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if recursive {
                    pending.push(path);
                }
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if extensions.is_empty() || extensions.iter().any(|ext| name.ends_with(ext)) {
                let relative = path.strip_prefix(repo_root()).unwrap();
                found.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found
}

/// The text with fenced code blocks blanked out (line count kept), so that
/// code is never read as a table or a link.
fn without_code_blocks(markdown: &str) -> String {
    let mut inside = false;
    markdown
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("```") {
                inside = !inside;
                ""
            } else if inside {
                ""
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths that table rows name in their first cell: the first `code span`
/// of each row, when it looks like a repository path (has a `/`).
fn table_paths(markdown: &str) -> BTreeSet<String> {
    without_code_blocks(markdown)
        .lines()
        .filter(|line| line.starts_with('|') && !line.starts_with("|---"))
        .filter_map(|line| {
            let first_cell = line[1..].split('|').next()?;
            let start = first_cell.find('`')? + 1;
            let end = start + first_cell[start..].find('`')?;
            let path = &first_cell[start..end];
            path.contains('/').then(|| path.to_string())
        })
        .collect()
}

/// Fails with one line per file of `expected` that `doc` does not name in a
/// table, and per path the tables name that does not exist.
fn check_tables(doc: &str, expected: &BTreeSet<String>, what: &str) {
    let named = table_paths(&read(doc));
    let mut problems = Vec::new();
    for file in expected {
        if !named.contains(file) {
            problems.push(format!(
                "{file} is missing from {doc}: add a row \"| `{file}` | ... |\" to its table of {what}"
            ));
        }
    }
    for path in &named {
        if !repo_root().join(path).exists() {
            problems.push(format!(
                "{doc} names {path}, which does not exist: remove or rename its row"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_module_is_in_the_architecture_table() {
    let mut modules = files("src", true, &[".rs", ".c", ".cpp", ".py"]);
    for crate_sources in ["abi/src", "loader/src", "support/src"] {
        modules.extend(files(crate_sources, false, &[".rs"]));
    }
    check_tables("docs/architecture.md", &modules, "modules");
}

/// How long a module may grow before it must say why it is still one concept.
const LONG_MODULE_LINES: usize = 500;
/// The note a longer module carries in its module docs.
const LONG_MODULE_NOTE: &str = "One file over 500 lines:";

/// The modules over `LONG_MODULE_LINES` lines (in `files`) whose text lacks the note.
fn long_modules_without_a_note(files: &BTreeSet<String>) -> Vec<String> {
    files
        .iter()
        .filter_map(|file| {
            let text = read(file);
            let lines = text.lines().count();
            (lines > LONG_MODULE_LINES && !text.contains(LONG_MODULE_NOTE))
                .then(|| format!("{file} ({lines} lines)"))
        })
        .collect()
}

#[test]
fn every_long_module_says_why_it_is_one_concept() {
    let missing = long_modules_without_a_note(&files("src", true, &[".rs"]));
    assert!(
        missing.is_empty(),
        "modules over {LONG_MODULE_LINES} lines without a `//! {LONG_MODULE_NOTE} <why>` note \
         in their module docs (split them by concept, or say why they are one): {missing:?}"
    );
}

#[test]
fn every_test_file_and_script_is_in_the_testing_tables() {
    let mut expected = files("tests", false, &[".rs"]);
    expected.extend(files("scripts", false, &[]));
    check_tables("docs/testing.md", &expected, "test files and scripts");
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// made hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (a repeated heading gets `-1`, `-2`, ...).
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in without_code_blocks(markdown).lines() {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let base = slug(heading.trim_start_matches('#'));
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// The targets of the inline links `[text](target)` outside code.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in without_code_blocks(markdown).lines() {
        // Code spans hold text such as `[](int n)` that is not a link.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    targets
}

/// What is wrong with a link in `doc` (a repository-relative Markdown file), if anything.
fn broken_link(doc: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (file, anchor) = match target.split_once('#') {
        Some((file, anchor)) => (file, Some(anchor)),
        None => (target, None),
    };
    let linked = if file.is_empty() {
        doc.to_path_buf()
    } else {
        doc.parent().unwrap().join(file)
    };
    let on_disk = repo_root().join(&linked);
    if !on_disk.exists() {
        return Some(format!("{} does not exist", linked.display()));
    }
    let anchor = anchor?;
    if on_disk.extension().is_some_and(|ext| ext == "md") {
        let text = fs::read_to_string(&on_disk).unwrap();
        if !anchors(&text).contains(anchor) {
            return Some(format!("{} has no heading #{anchor}", linked.display()));
        }
    }
    None
}

#[test]
fn relative_links_reach_files_and_headings() {
    let mut docs = vec!["README.md".to_string()];
    docs.extend(files("docs", false, &[".md"]));
    let mut problems = Vec::new();
    for doc in &docs {
        for target in link_targets(&read(doc)) {
            if let Some(problem) = broken_link(Path::new(doc), &target) {
                problems.push(format!("{doc}: the link ({target}) is broken: {problem}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The minors (`3.12`) of the versions `scripts/python-versions` lists.
fn supported_minors() -> BTreeSet<String> {
    read("scripts/python-versions")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let version = line.split_whitespace().next().unwrap();
            version.split('.').take(2).collect::<Vec<_>>().join(".")
        })
        .collect()
}

#[test]
fn the_supported_versions_table_lists_scripts_python_versions() {
    let minors = supported_minors();
    assert!(
        minors.len() >= 2,
        "scripts/python-versions lists {minors:?}"
    );
    let doc = read("docs/python.md");
    let rows: BTreeSet<String> = without_code_blocks(&doc)
        .lines()
        .filter_map(|line| {
            let cell = line.strip_prefix('|')?.split('|').next()?.trim();
            let is_minor = cell.starts_with("3.") && cell[2..].chars().all(|c| c.is_ascii_digit());
            is_minor.then(|| cell.to_string())
        })
        .collect();
    assert_eq!(
        rows, minors,
        "docs/python.md's table of supported CPython versions (first column) must list \
         exactly the minors of scripts/python-versions"
    );
}

/// The package tests (`tests/package.rs`) run a host on each version of
/// `scripts/python-versions`: a scenario per pyenv version, one per sid minor.
/// A version added to or dropped from the list must be added to or dropped
/// from them too; the test says which.
#[test]
fn the_package_tests_run_on_every_listed_version() {
    let list = read("scripts/python-versions");
    let package_tests = read("tests/package.rs");
    let mut problems = Vec::new();
    for line in list.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (version, source) = (words.next().unwrap(), words.next().unwrap_or(""));
        let call = match source {
            "pyenv" => format!("run_scenario(&pyenv_python(\"{version}\"), \"{version}\""),
            "sid" => format!("run_sid_scenario(\"{version}\""),
            // The Windows CPythons run under wine in scripts/test-windows.sh,
            // which takes its versions from the list itself.
            "windows" => continue,
            other => {
                problems.push(format!(
                    "scripts/python-versions: {version} comes from \"{other}\", not pyenv, sid or windows"
                ));
                continue;
            }
        };
        if !package_tests.contains(&call) {
            problems.push(format!(
                "tests/package.rs runs no host on CPython {version} (scripts/python-versions lists \
                 it): add a test that calls {call}, ...)"
            ));
        }
    }
    let listed: BTreeSet<&str> = list
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for (at, _) in package_tests.match_indices("run_scenario(&pyenv_python(\"") {
        let rest = &package_tests[at + "run_scenario(&pyenv_python(\"".len()..];
        let version = &rest[..rest.find('"').unwrap()];
        if !listed.contains(version) {
            problems.push(format!(
                "tests/package.rs runs a host on CPython {version}, which scripts/python-versions \
                 does not list: add it there or drop the test"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checks above, on made-up input: each can fail.
#[test]
fn the_checks_see_what_they_look_for() {
    // A long file without the note is found; a short one never is.
    let long = BTreeSet::from(["docs/CPYTHON-NOTES.md".to_string()]);
    assert!(read("docs/CPYTHON-NOTES.md").lines().count() > LONG_MODULE_LINES);
    assert_eq!(long_modules_without_a_note(&long).len(), 1);
    let short = BTreeSet::from(["src/lib.rs".to_string()]);
    assert!(long_modules_without_a_note(&short).is_empty());
    let doc = "# T\n\n| file | what |\n|---|---|\n| `tests/a.rs` | x |\n| plain | y |\n\
               ```\n| `tests/in_code.rs` | z |\n```\n";
    assert_eq!(table_paths(doc), BTreeSet::from(["tests/a.rs".to_string()]));
    assert_eq!(
        slug(" A view of the GIL: statistics"),
        "a-view-of-the-gil-statistics"
    );
    assert_eq!(
        slug(" C++ exceptions in host functions"),
        "c-exceptions-in-host-functions"
    );
    assert_eq!(
        slug(" What `scripts/test.sh` runs"),
        "what-scriptstestsh-runs"
    );
    assert_eq!(
        anchors("# A\n## B\n## B\n```\n# C\n```\n"),
        BTreeSet::from(["a".to_string(), "b".to_string(), "b-1".to_string()])
    );
    assert_eq!(
        link_targets(
            "see [x](docs/c.md#a) and `[](int n)`, [y](https://e.org)\n```\n[z](no.md)\n```"
        ),
        vec!["docs/c.md#a".to_string(), "https://e.org".to_string()]
    );
    assert!(broken_link(Path::new("README.md"), "docs/c.md").is_none());
    assert!(broken_link(Path::new("README.md"), "docs/no-such-guide.md").is_some());
    assert!(broken_link(Path::new("docs/c.md"), "threading.md#no-such-heading").is_some());
    assert!(broken_link(Path::new("docs/c.md"), "../README.md#c").is_none());
}
