//! The source tree's layers (DESIGN §2): a file imports only from its own folder and from lower
//! layers; folders on one layer never import each other. Every `crate::` path (and `weir::` in
//! the binary) in `src/` is checked; a violation fails with its
//! file and line. The plain-data files of L0 are ordered among themselves, so they cannot form a
//! cycle either.

mod common;

use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first. A layer's modules are in ranks: a module may import
/// the modules of lower ranks of its own layer, never those of its own rank. The single-file
/// modules of L0 are each a rank of their own (so they cannot form a cycle); in L7 the output
/// formatting serves every front end, and the binary (`main`) starts them all.
const LAYERS: &[(&str, &[&[&str]])] = &[
    (
        "L0 plain data",
        &[
            &["error"],
            &["fs"],
            &["data_dir"],
            &["partition"],
            &["catalog"],
            &["message"],
            &["graph"],
            &["settings"],
        ],
    ),
    ("L1", &[&["state", "planner"]]),
    ("L2", &[&["runtime"]]),
    ("L3", &[&["operators", "connectors"]]),
    ("L4", &[&["checkpoint"]]),
    ("L5", &[&["job"]]),
    ("L6", &[&["engine"]]),
    ("L7 front ends", &[&["format"], &["pgwire", "http", "repl", "bench"], &["main"]]),
];

/// (layer index, rank within the layer) of a top-level module.
fn place(module: &str) -> Option<(usize, usize)> {
    LAYERS
        .iter()
        .enumerate()
        .find_map(|(layer, (_, ranks))| ranks.iter().position(|rank| rank.contains(&module)).map(|rank| (layer, rank)))
}

/// Whether `from` may import `to` (both top-level modules).
fn allowed(from: &str, to: &str) -> bool {
    if from == to {
        return true;
    }
    match (place(from), place(to)) {
        (Some((from_layer, from_rank)), Some((to_layer, to_rank))) => {
            to_layer < from_layer || (to_layer == from_layer && to_rank < from_rank)
        }
        _ => false,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line refers to through `crate::` or `weir::` (the binary). `super::`
/// is not followed: the tree uses it only inside a folder (and in `mod tests` for the file itself).
fn referenced_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut found = Vec::new();
    let ident = |rest: &str| -> String { rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    for prefix in ["crate::", "weir::"] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a::X, b}`: every item names a module (a multi-line group is reported).
                let items = group.split('}').next().unwrap_or("");
                found.extend(items.split(',').map(|item| ident(item.trim())).filter(|n| !n.is_empty()));
                if !group.contains('}') {
                    found.push("<a crate::{ group over several lines: write it on one line>".to_string());
                }
            } else {
                let name = ident(rest);
                if !name.is_empty() {
                    found.push(name);
                }
            }
        }
    }
    found
}

/// The crate root's re-exports (`pub use engine::session::{Output, Session};`): name → module.
fn root_reexports(lib: &str) -> Vec<(String, String)> {
    let mut names = Vec::new();
    for line in lib.lines() {
        let Some(path) = line.trim().strip_prefix("pub use ").and_then(|p| p.strip_suffix(';')) else {
            continue;
        };
        let module = path.split("::").next().unwrap_or("").to_string();
        let last = path.rsplit("::").next().unwrap_or("");
        for name in last.trim_matches(|c| c == '{' || c == '}').split(',') {
            names.push((name.trim().to_string(), module.clone()));
        }
    }
    names
}

#[test]
fn imports_point_only_downward() {
    let src = common::repo_dir().join("src");
    let reexports = root_reexports(&std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs"));
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut unmapped = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        let module = parts[0].clone();
        if module == "lib" {
            continue;
        }
        if place(&module).is_none() {
            unmapped.push(relative.display().to_string());
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read");
        for (number, line) in text.lines().enumerate() {
            for target in referenced_modules(line) {
                let target = reexports
                    .iter()
                    .find(|(name, _)| *name == target)
                    .map_or(target, |(_, module)| module.clone());
                if !allowed(&module, &target) {
                    violations.push(format!(
                        "src/{}:{}: {module} ({}) imports {target} ({})",
                        relative.display(),
                        number + 1,
                        place(&module).map_or("?", |(l, _)| LAYERS[l].0),
                        place(&target).map_or("not in any layer", |(l, _)| LAYERS[l].0),
                    ));
                }
            }
        }
    }
    assert!(
        unmapped.is_empty(),
        "files of modules in no layer (add them to LAYERS): {unmapped:#?}"
    );
    assert!(
        violations.is_empty(),
        "{} imports point up or sideways:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn the_rule_itself() {
    assert!(allowed("runtime", "state"));
    assert!(!allowed("state", "runtime"));
    assert!(!allowed("operators", "connectors"), "one layer, two folders");
    assert!(allowed("graph", "catalog") && !allowed("catalog", "graph"), "L0 is ordered");
    assert!(allowed("pgwire", "format") && allowed("main", "pgwire") && !allowed("pgwire", "repl"));
    assert!(allowed("job", "job"));
    assert_eq!(referenced_modules("use crate::job::x; // crate::engine"), vec!["job"]);
    assert_eq!(
        referenced_modules("let s = weir::engine::Session::open(d); x_crate::y"),
        vec!["engine"]
    );
    assert_eq!(referenced_modules("use crate::{error::Error, state};"), vec!["error", "state"]);
    assert_eq!(
        root_reexports("pub use engine::session::{Output, Session};\npub use error::Error;"),
        [("Output", "engine"), ("Session", "engine"), ("Error", "error")].map(|(n, m)| (n.to_string(), m.to_string()))
    );
}
