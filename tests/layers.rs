//! The module graph is a stack: every module of `src/` uses only modules of lower layers, and no
//! two files import each other, directly or around a loop. Read from the bottom up, each layer
//! needs only what is below it.
//!
//! The imports are read from the source as text (`crate::name`, `super::name`), outside
//! comments and unit-test modules, so a new arrow pointing up fails here, with the file and the
//! import named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module uses only modules of lower layers (modules of one layer
/// know nothing of each other).
const LAYERS: &[&[&str]] = &[
    // Shared pieces that know nothing of the simulator.
    &["sync", "rng", "watch", "shutdown", "http"],
    &["clock"],
    &["settings"],
    &["schema"],
    &["avro"],
    &["encode"],
    &["labels"],
    &["script"],
    &["rate"],
    &["timeline"],
    &["delivery"],
    &["kafka", "registry"],
    &["sink"],
    &["metrics"],
    &["broker"],
    // The producer's pipeline and the consumer side, side by side.
    &["pipeline", "analyze"],
    // The metrics endpoint, over the producer's figures and the analyzer's.
    &["exporter", "group"],
    &["scenario"],
    // The report reads the analyzer's summary, and a scenario for its rate curve.
    &["reload", "check", "report"],
    &["error"],
    &["app", "bench"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The file's code: no comments, no unit-test module.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module path of a file: `src/analyze/detect/mod.rs` is `["analyze", "detect"]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The identifiers that follow each `prefix` in `code`, with what follows them in the path:
/// `crate::analyze::detect::Rule` gives `["analyze", "detect", "Rule"]`. Grouped imports
/// (`crate::{a, b}` or `super::{x::Y, z}`) give one path per member.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for member in inner.split(',') {
                paths.push(split_path(member.trim()));
            }
        } else {
            paths.push(split_path(rest));
        }
    }
    paths
}

fn split_path(text: &str) -> Vec<String> {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    text[..end]
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Resolves a module path to the file that defines the longest prefix of it that is a file.
fn file_of(files: &BTreeMap<Vec<String>, PathBuf>, path: &[String]) -> Option<PathBuf> {
    (1..=path.len())
        .rev()
        .find_map(|n| files.get(&path[..n]).cloned())
}

struct Graph {
    /// For each file, the files it imports, each with the text of the import.
    edges: BTreeMap<PathBuf, BTreeMap<PathBuf, String>>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let all = rust_files(&src);
    let files: BTreeMap<Vec<String>, PathBuf> = all
        .iter()
        .filter(|f| !f.ends_with("lib.rs") && !f.ends_with("main.rs"))
        .map(|f| (module_path(&src, f), f.clone()))
        .collect();
    let mut edges = BTreeMap::new();
    for (module, file) in &files {
        if module.last().is_some_and(|m| m == "tests") {
            continue; // unit tests may reach anywhere
        }
        let code = code_of(file);
        let mut targets = BTreeMap::new();
        for path in paths_after(&code, "crate::") {
            if let Some(target) = file_of(&files, &path) {
                targets.insert(target, format!("crate::{}", path.join("::")));
            }
        }
        let is_folder_root = file.ends_with("mod.rs");
        // `super` of a folder's mod.rs is the folder's parent; of any other file, its folder.
        let parent: Vec<String> = if is_folder_root {
            module[..module.len().saturating_sub(1)].to_vec()
        } else {
            module[..module.len() - 1].to_vec()
        };
        for path in paths_after(&code, "super::") {
            let full: Vec<String> = parent.iter().cloned().chain(path.clone()).collect();
            let target = file_of(&files, &full).or_else(|| files.get(&parent).cloned());
            if let Some(target) = target {
                targets.insert(target, format!("super::{}", path.join("::")));
            }
        }
        targets.remove(file);
        edges.insert(file.clone(), targets);
    }
    Graph { edges }
}

/// A file as the project names it: `src/analyze/consume.rs`.
fn shown(file: &Path) -> String {
    file.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(file)
        .display()
        .to_string()
}

fn top_module(file: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    module_path(&src, file)[0].clone()
}

#[test]
fn every_module_uses_only_lower_layers() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (file, targets) in &graph.edges {
        let from = top_module(file);
        let Some(from_layer) = layer_of(&from) else {
            wrong.push(format!("{}: module `{from}` is in no layer", shown(file)));
            continue;
        };
        for (target, import) in targets {
            let to = top_module(target);
            if to == from {
                continue;
            }
            match layer_of(&to) {
                Some(to_layer) if to_layer < from_layer => {}
                _ => wrong.push(format!(
                    "{} (layer of `{from}`) uses `{import}`: `{to}` is not below it",
                    shown(file)
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that point up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_two_files_import_each_other_around_a_loop() {
    let graph = graph();
    // Depth-first search for a back edge, naming the loop.
    fn visit(
        file: &PathBuf,
        graph: &Graph,
        stack: &mut Vec<PathBuf>,
        done: &mut BTreeSet<PathBuf>,
        loops: &mut Vec<String>,
    ) {
        if done.contains(file) {
            return;
        }
        if let Some(at) = stack.iter().position(|f| f == file) {
            let names: Vec<String> = stack[at..]
                .iter()
                .chain(std::iter::once(file))
                .map(|f| shown(f))
                .collect();
            loops.push(names.join(" -> "));
            return;
        }
        stack.push(file.clone());
        for target in graph.edges.get(file).into_iter().flat_map(|t| t.keys()) {
            visit(target, graph, stack, done, loops);
        }
        stack.pop();
        done.insert(file.clone());
    }
    let mut loops = Vec::new();
    let mut done = BTreeSet::new();
    for file in graph.edges.keys() {
        visit(file, &graph, &mut Vec::new(), &mut done, &mut loops);
    }
    assert!(loops.is_empty(), "import loops:\n{}", loops.join("\n"));
}

#[test]
fn the_layer_check_sees_an_import_that_points_up() {
    // The reader itself: a `crate::` path in a grouped import resolves to each member's file.
    let paths = paths_after("use crate::{app::Options, sink::Sink};", "crate::");
    assert_eq!(paths, vec![vec!["app", "Options"], vec!["sink", "Sink"]]);
    assert!(layer_of("app") > layer_of("sink"));
}
