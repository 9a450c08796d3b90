//! Tidy checks in the spirit of rust-analyzer's: rules about the code base
//! that rustc cannot check, enforced by a test (`cargo test -p twilio-broker
//! --lib tidy`).
//!
//! - Only the gRPC edge sees generated or tonic/prost types: `grpc/`,
//!   `server.rs` (it also gives tonic each connection's caller through
//!   `Connected`), the CLI's client commands and `fuzzing.rs` (it feeds proto
//!   requests in). `transport/` does not: it hands connections over as plain
//!   tokio I/O.
//! - Only the vault seals (`store/vault.rs`, with `seal.rs` itself;
//!   `fuzzing.rs` seals test records to fuzz their opening, and
//!   `state_file.rs` seals the state file, which lives outside the store).
//! - No `unwrap_or_else(|_| unreachable!())`, which hides an `unwrap` from
//!   the `unwrap_used` lint: say why it cannot fail with `expect`.
//! - Every module of `lib.rs` has its row in ARCHITECTURE.md.
//! - No status code below the edge: `tonic::Status`/`tonic::Code` and
//!   status details only in `grpc/`, `server.rs`, `cli/` and `transport/`;
//!   `error.rs` has no variant named after a gRPC code.
//! - No import cycle among `broker/src`'s top-level modules, nor among the
//!   children of a folder module; nothing below names `crate::grpc` (but
//!   `server.rs`, the CLI and the fuzz bodies) or `crate::server` (but the
//!   CLI).
//! - `unsafe` only in the plugin SDK, the plugin host and `system`, in
//!   every crate of the workspace.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn relative(path: &Path) -> String {
    path.strip_prefix(src())
        .expect("under src")
        .to_string_lossy()
        .into_owned()
}

/// Lines of code (comments dropped) of every source file but this one.
fn code() -> Vec<(String, Vec<String>)> {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    files
        .into_iter()
        .filter(|f| relative(f) != "tidy.rs")
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("utf-8 source");
            let lines = text
                .lines()
                .map(|l| l.split("//").next().unwrap_or_default().to_owned())
                .collect();
            (relative(&f), lines)
        })
        .collect()
}

#[test]
fn generated_and_tonic_types_stay_at_the_edge() {
    let allowed = |file: &str| {
        file.starts_with("grpc/")
            || file.starts_with("cli/")
            || file == "server.rs"
            || file == "fuzzing.rs"
    };
    let mut found = Vec::new();
    for (file, lines) in code() {
        if allowed(&file) {
            continue;
        }
        for (n, line) in lines.iter().enumerate() {
            if ["tonic::", "twilio_broker_api", "prost::", "prost_types::"]
                .iter()
                .any(|p| line.contains(p))
            {
                found.push(format!("{file}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "edge types outside the edge:\n{}",
        found.join("\n")
    );
}

/// Status codes are chosen in one table (`grpc/status.rs`): no module
/// below the edge builds a `tonic::Status`, names a `tonic::Code` or
/// attaches status details, and no `Error` variant is named after a code.
#[test]
fn status_codes_are_chosen_only_at_the_edge() {
    // `console/` is the other edge: its one table (`console/web.rs`) picks
    // HTTP statuses (`StatusCode::`), never a gRPC one.
    let allowed = |file: &str| {
        file.starts_with("grpc/")
            || file.starts_with("cli/")
            || file.starts_with("transport/")
            || file.starts_with("console/")
            || file == "server.rs"
    };
    let mut found = Vec::new();
    for (file, lines) in code() {
        if allowed(&file) {
            continue;
        }
        for (n, line) in lines.iter().enumerate() {
            if [
                "tonic::Status",
                "tonic::Code",
                "tonic_types",
                "Status::",
                "Code::",
            ]
            .iter()
            .any(|p| line.contains(p))
            {
                found.push(format!("{file}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    let error = std::fs::read_to_string(src().join("error.rs")).expect("error.rs");
    for code_name in [
        "InvalidArgument",
        "FailedPrecondition",
        "PermissionDenied",
        "ResourceExhausted",
        "Unauthenticated",
        "Unavailable(",
        "NotFound(",
    ] {
        if error.contains(&format!("    {code_name}")) {
            found.push(format!(
                "error.rs: a variant named after a status code: {code_name}"
            ));
        }
    }
    assert!(
        found.is_empty(),
        "status codes chosen outside grpc/status.rs:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_vault_seals() {
    let mut found = Vec::new();
    for (file, lines) in code() {
        // fuzzing.rs seals records to fuzz their opening; the state file is
        // the one other sealed artefact (outside the store).
        if file == "store/vault.rs"
            || file.starts_with("store/vault/")
            || file == "seal.rs"
            || file.starts_with("store/seal")
            || file == "fuzzing.rs"
            || file == "state_file.rs"
        {
            continue;
        }
        for (n, line) in lines.iter().enumerate() {
            if line.contains("seal::seal(") || line.contains("seal::seal_") {
                found.push(format!("{file}:{}", n + 1));
            }
        }
    }
    assert!(found.is_empty(), "sealing outside the vault: {found:?}");
}

#[test]
fn no_hidden_unwraps() {
    let needle = ["unwrap_or_else(|_| unreachable", "!())"].concat();
    let found: Vec<String> = code()
        .into_iter()
        .flat_map(|(file, lines)| {
            lines
                .into_iter()
                .enumerate()
                .filter(|(_, l)| l.contains(&needle[..needle.len() - 3]))
                .map(move |(n, _)| format!("{file}:{}", n + 1))
        })
        .collect();
    assert!(
        found.is_empty(),
        "write `expect(\"why it cannot fail\")` instead: {found:?}"
    );
}

#[test]
fn every_module_is_on_the_code_map() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let map =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md");
    let modules: Vec<&str> = lib
        .lines()
        .filter_map(|l| {
            l.trim()
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ")
                .strip_prefix("mod ")
                .and_then(|m| m.strip_suffix(';'))
        })
        .collect();
    // A change to lib.rs's declarations that this parser stops seeing would
    // otherwise make the test pass on nothing.
    assert!(
        modules.len() >= 20,
        "found only {modules:?} in lib.rs; update this parser"
    );
    let missing: Vec<&&str> = modules
        .iter()
        .filter(|m| !map.contains(&format!("`{m}/`")) && !map.contains(&format!("`{m}.rs`")))
        .collect();
    assert!(
        missing.is_empty(),
        "modules missing from ARCHITECTURE.md: {missing:?}"
    );
}

/// The first path segment after each `prefix` in `text` (`crate::grpc::x`
/// gives `grpc` for the prefix `crate::`), also for each item of a group
/// `prefix{a, b::{c, d}}` (`a` and `b`), across lines.
fn named_after(text: &str, prefix: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (at, _) in text.match_indices(prefix) {
        // `super::super::x` names a grandparent's child, not a sibling.
        if prefix == "super::" && text[..at].ends_with("super::") {
            continue;
        }
        let rest = &text[at + prefix.len()..];
        let Some(group) = rest.strip_prefix('{') else {
            out.push(ident(rest));
            continue;
        };
        // The items at depth 0 of the group, each named by its first segment.
        let (mut depth, mut item_start) = (0usize, true);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if item_start && !c.is_whitespace() => {
                    out.push(ident(&group[i..]));
                    item_start = false;
                }
                _ => {}
            }
        }
    }
    out.retain(|m| !m.is_empty() && m != "self" && m != "super");
    out
}

/// A directed graph of module names: who imports whom.
type Graph = std::collections::BTreeMap<String, std::collections::BTreeSet<String>>;

/// A cycle in `graph`, as the path that closes it (`a -> b -> a`), if any.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        graph: &Graph,
        node: &str,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(graph, next, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(graph, node, &mut Vec::new(), &mut done))
}

/// The top-level module of a source file: `grpc/admin.rs` → `grpc`,
/// `server.rs` → `server`.
fn top_module(file: &str) -> &str {
    file.split('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".rs")
}

/// The import graph of `broker/src`'s top-level modules, from every
/// `crate::X` path in their code (test-only files included: a cycle through
/// a test is still a cycle in the source).
fn top_level_graph() -> Graph {
    let mut graph = Graph::new();
    for (file, lines) in code() {
        let from = top_module(&file).to_owned();
        let entry = graph.entry(from.clone()).or_default();
        for to in named_after(&lines.join("\n"), "crate::") {
            if to != from {
                entry.insert(to);
            }
        }
    }
    graph
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry((*a).to_owned())
                .or_default()
                .insert((*b).to_owned());
        }
        g
    };
    assert_eq!(cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    assert_eq!(
        cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        named_after("use crate::{grpc::x, store};  crate::sid::is(", "crate::"),
        vec!["grpc", "store", "sid"]
    );
    assert_eq!(
        named_after(
            "use crate::{\n    a::{b, c},\n    d,\n};\nuse crate::e;",
            "crate::"
        ),
        vec!["a", "d", "e"]
    );
    assert_eq!(
        named_after("use super::super::x; use super::rules::y;", "super::"),
        vec!["rules"]
    );
}

#[test]
fn no_import_cycle_among_top_level_modules() {
    let graph = top_level_graph();
    assert!(graph.len() >= 20, "found only {:?}", graph.keys());
    if let Some(found) = cycle(&graph) {
        panic!(
            "import cycle among broker/src's modules: {}\n(break it by moving what both \
             sides need below both; see ARCHITECTURE.md, \"Layers\")",
            found.join(" -> ")
        );
    }
}

/// Within every folder module, its children's imports of each other (`super::X`
/// from a child file, `crate::folder::X` from anywhere inside) form no cycle.
#[test]
fn no_import_cycle_inside_a_folder_module() {
    let mut graphs: std::collections::BTreeMap<String, Graph> = Default::default();
    for (file, lines) in code() {
        let parts: Vec<&str> = file.split('/').collect();
        let [folder, child_file, ..] = parts[..] else {
            continue;
        };
        if child_file == "mod.rs" {
            continue;
        }
        let child = child_file.trim_end_matches(".rs").to_owned();
        let graph = graphs.entry(folder.to_owned()).or_default();
        let entry = graph.entry(child.clone()).or_default();
        let prefix = format!("crate::{folder}::");
        let text = lines.join("\n");
        // `super::` from a file directly in the folder names a sibling.
        let siblings = if parts.len() == 2 {
            named_after(&text, "super::")
        } else {
            Vec::new()
        };
        for to in siblings.into_iter().chain(named_after(&text, &prefix)) {
            if to != child {
                entry.insert(to);
            }
        }
    }
    let found: Vec<String> = graphs
        .iter()
        .filter_map(|(folder, graph)| {
            cycle(graph).map(|c| format!("{folder}/: {}", c.join(" -> ")))
        })
        .collect();
    assert!(
        found.is_empty(),
        "import cycles inside folder modules (move what both sides need into a module \
         both import):\n{}",
        found.join("\n")
    );
}

/// Layers: the edge (`grpc/`) and the wiring (`server.rs`) are on top. Only
/// the wiring, the CLI and the fuzz bodies (which feed proto requests in)
/// may name `crate::grpc`; only the CLI may name `crate::server`.
#[test]
fn nothing_imports_up_into_the_edge_or_the_wiring() {
    let may_name = |module: &str, file: &str| match module {
        "grpc" => ["grpc", "server", "cli", "main", "fuzzing"].contains(&top_module(file)),
        "server" => ["server", "cli", "main"].contains(&top_module(file)),
        _ => true,
    };
    let mut found = Vec::new();
    for (file, lines) in code() {
        for to in named_after(&lines.join("\n"), "crate::") {
            if !may_name(&to, &file) {
                // The line, where the path is written out on one.
                let at = lines
                    .iter()
                    .position(|l| l.contains(&format!("crate::{to}")))
                    .map_or_else(String::new, |n| format!(":{}", n + 1));
                found.push(format!("{file}{at}: names crate::{to}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "imports up into the edge or the wiring (pass what the lower layer needs \
         down instead):\n{}",
        found.join("\n")
    );
}

/// The crates where `unsafe` may live, by folder: the plugin SDK's C ABI,
/// the plugin host (dlopen, calls through the ABI) and the system calls
/// without a safe wrapper. ARCHITECTURE.md names the same three.
const UNSAFE_CRATES: [&str; 3] = ["plugins/sdk", "plugins/host", "system"];

/// The folder of every crate in the workspace (its `members`), and `fuzz`
/// (a workspace of its own).
fn workspace_crates() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("workspace Cargo.toml");
    let members = manifest
        .split("\nmembers = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("a members list in the workspace Cargo.toml");
    let mut crates: Vec<String> = members
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    crates.push("fuzz".to_owned());
    crates
}

#[test]
fn unsafe_lives_only_in_the_sdk_the_host_and_system() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crates = workspace_crates();
    assert!(
        UNSAFE_CRATES.iter().all(|c| crates.iter().any(|m| m == c)),
        "{UNSAFE_CRATES:?} are not all workspace members: {crates:?}"
    );
    // Spelled in two halves so that this file does not match itself.
    let needles: Vec<String> = [" {", " fn", " impl", " extern"]
        .iter()
        .map(|rest| ["unsafe", rest].concat())
        .chain([["allow(unsafe", "_code)"].concat()])
        .collect();
    let mut found = Vec::new();
    for krate in crates
        .iter()
        .filter(|c| !UNSAFE_CRATES.contains(&c.as_str()))
    {
        let dir = root.join(krate);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("crate Cargo.toml");
        // The root crate's manifest is also the workspace's: only its
        // `[lints]` table counts.
        let lints = manifest
            .split("\n[lints")
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n");
        let forbids =
            lints.starts_with("]\nworkspace = true") || lints.contains("unsafe_code = \"forbid\"");
        if !forbids && krate != "fuzz" {
            found.push(format!("{krate}/Cargo.toml: neither `[lints] workspace = true` nor unsafe_code = \"forbid\""));
        }
        let mut files = Vec::new();
        for sub in [
            "src",
            "proto",
            "benches",
            "examples",
            "fuzz_targets",
            "tests",
        ] {
            if dir.join(sub).is_dir() && !(krate == "." && sub == "tests") {
                sources(&dir.join(sub), &mut files);
            }
        }
        // The root crate's `tests/` is the broker's e2e suite, below.
        if krate == "broker" {
            sources(&root.join("tests/e2e"), &mut files);
        }
        for file in files {
            let text = std::fs::read_to_string(&file).expect("utf-8 source");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                if needles.iter().any(|p| code.contains(p.as_str())) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "unsafe outside {UNSAFE_CRATES:?}:\n{}",
        found.join("\n")
    );
}
