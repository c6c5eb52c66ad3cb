//! No module imports a module that imports it back, at the top level (`crate::gpu` and
//! `crate::simulation`) or one level down (`crate::deck::pair` and `crate::deck::world`): every
//! `crate::a::b` path in code (comments left out) is an edge, and the graph must have no cycle.
//! Files over 800 lines are refused too (a concept per module).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `src/gpu/md/mod.rs` → ["gpu", "md"].
fn module_of(path: &Path, src: &Path) -> Vec<String> {
    let rel = path.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module paths (lower-case segments only) that `crate::` and `super::` paths in `code`, in
/// module `me`, name.
fn named_modules(code: &str, me: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (prefix, base) in [("crate::", &[][..]), ("super::", &me[..me.len().saturating_sub(1)])] {
        for path in paths_after(code, prefix) {
            out.push(base.iter().cloned().chain(path).collect());
        }
    }
    out
}

fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        // `super::super::` and `crate::` inside `super::` paths are rare here: take one level.
        rest = &rest[at + prefix.len()..];
        let path: Vec<String> = rest
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .next()
            .unwrap_or("")
            .split("::")
            .take_while(|s| s.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
            .map(String::from)
            .collect();
        if !path.is_empty() {
            out.push(path);
        }
    }
    out
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // Depth-first search with the current path on a stack.
    fn visit(node: &str, edges: &BTreeMap<String, BTreeSet<String>>, state: &mut BTreeMap<String, u8>, path: &mut Vec<String>) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let start = path.iter().position(|p| p == next).unwrap();
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(next, edges, state, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if !state.contains_key(node.as_str())
            && let Some(c) = visit(node, edges, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn modules_form_no_cycle_and_files_stay_short() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: [BTreeMap<String, BTreeSet<String>>; 2] = Default::default();
    let mut long = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if text.lines().count() > 800 {
            long.push(format!("{} ({} lines)", file.display(), text.lines().count()));
        }
        let me = module_of(file, &src);
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for target in named_modules(code, &me) {
                for depth in 1..=2 {
                    let (from, to) = (me.iter().take(depth).cloned().collect::<Vec<_>>(), target.iter().take(depth).cloned().collect::<Vec<_>>());
                    // A module may name its parents and its own children.
                    if from.len() == depth && to.len() == depth && from != to && !from.starts_with(&to) && !to.starts_with(&from) {
                        edges[depth - 1].entry(from.join("::")).or_default().insert(to.join("::"));
                    }
                }
            }
        }
    }
    for (depth, graph) in edges.iter().enumerate() {
        println!("level {}: {} modules, {} imports", depth + 1, graph.len(), graph.values().map(BTreeSet::len).sum::<usize>());
        if let Some(cycle) = find_cycle(graph) {
            panic!("module cycle: {}", cycle.join(" -> "));
        }
    }
    assert!(long.is_empty(), "files over 800 lines: {long:?}");
}
