//! The shape of `src/`: imports only go down (ARCHITECTURE.md).
//!
//! Reads every source file, resolves each `crate::…` and `super::…` path to the file
//! that defines it, and fails on any import circle among files and on any file that
//! imports a module of a higher layer than its own. Test code (`mod tests`, files of
//! tests) is left out: it may look anywhere.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Top-level modules, bottom layer first; a module may import its own layer and below.
const LAYERS: &[&[&str]] = &[
    &["error", "protocol", "command", "config", "logging", "tls"],
    &["metrics"],
    &["compress", "policy", "ttl"],
    &["upstream", "l1"],
    &["invalidation", "rewrite"],
    &["session", "ops"],
    &["observe", "reload", "admin"],
    &["server"],
    // `props` is built for tests and fuzzing only: nothing else may depend on it.
    &["cli", "lib", "main", "props"],
];

type Graph = BTreeMap<PathBuf, BTreeSet<PathBuf>>;

#[test]
fn no_import_circles_among_source_files() {
    let graph = import_graph();
    let circles: Vec<Vec<PathBuf>> = strongly_connected(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect();
    let files: usize = circles.iter().map(Vec::len).sum();
    assert!(
        circles.is_empty(),
        "{files} files in {} import circle(s):\n{}",
        circles.len(),
        circles
            .iter()
            .map(|c| format!("  {}", names(c)))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn modules_import_only_their_layer_and_below() {
    let mut wrong = Vec::new();
    for (file, deps) in import_graph() {
        let from = layer_of(&file);
        for dep in deps {
            let to = layer_of(&dep);
            if to > from {
                wrong.push(format!("{} -> {}", name(&file), name(&dep)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that go up:\n{}",
        wrong.join("\n")
    );
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn name(p: &Path) -> String {
    p.strip_prefix(src()).unwrap_or(p).display().to_string()
}

fn names(files: &[PathBuf]) -> String {
    files.iter().map(|f| name(f)).collect::<Vec<_>>().join(", ")
}

/// The layer of a file's top-level module (`src/session/state.rs` -> `session`).
fn layer_of(file: &Path) -> usize {
    let rel = file.strip_prefix(src()).unwrap();
    let top = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    let top = top.trim_end_matches(".rs");
    LAYERS
        .iter()
        .position(|l| l.contains(&top))
        .unwrap_or_else(|| panic!("module `{top}` has no layer in tests/layers.rs"))
}

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !is_test_file(&path) {
            out.push(path);
        }
    }
}

fn is_test_file(path: &Path) -> bool {
    let stem = path.file_stem().unwrap().to_string_lossy();
    stem == "tests" || stem == "proptests" || stem.ends_with("_tests")
}

fn import_graph() -> Graph {
    let mut files = Vec::new();
    source_files(&src(), &mut files);
    let mut graph = Graph::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let module = module_path(file);
        let text = without_tests(&text);
        let deps = paths_in(&text, &child_modules(&text))
            .into_iter()
            .filter_map(|p| absolute(&module, &p))
            .filter_map(|p| file_of(&p))
            .filter(|f| f != file)
            .collect();
        graph.insert(file.clone(), deps);
    }
    graph
}

/// The module path of a file: `src/a/b.rs` -> [a, b]; `src/lib.rs` -> [].
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts == ["lib"] || parts == ["main"] {
        Vec::new()
    } else {
        parts
    }
}

/// The text before the file's `#[cfg(test)] mod tests`, with comments removed.
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod ") && n.contains('{'))
        {
            break;
        }
        if !t.starts_with("//") {
            out.push_str(line.split(" //").next().unwrap_or(line));
            out.push('\n');
        }
    }
    out
}

/// The modules a file declares (`mod x;`, `pub mod x;`): paths may start with them.
fn child_modules(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l
                .strip_prefix("pub(crate) ")
                .or(l.strip_prefix("pub "))
                .unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

/// Every `crate::…`, `super::…`, `self::…` and `<child module>::…` path, braces
/// expanded, as segment lists.
fn paths_in(text: &str, children: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut starts = vec![
        "crate::".to_owned(),
        "super::".to_owned(),
        "self::".to_owned(),
    ];
    starts.extend(children.iter().map(|c| format!("{c}::")));
    for start in &starts {
        let mut from = 0;
        while let Some(i) = text[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            let before = at.checked_sub(1).map(|j| bytes[j]);
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
                continue;
            }
            let head = start.trim_end_matches("::").to_owned();
            expand(&text[from..], vec![head], &mut out);
        }
    }
    out
}

/// Reads the rest of a path after `prefix::`, expanding `{a, b::c}` groups.
fn expand(rest: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        for item in split_group(group)
            .into_iter()
            .filter(|i| !i.trim().is_empty())
        {
            expand(item, prefix.clone(), out);
        }
        return;
    }
    let ident: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() || ident == "self" {
        out.push(prefix);
        return;
    }
    let after = &rest[ident.len()..];
    let mut path = prefix;
    path.push(ident);
    match after.strip_prefix("::") {
        Some(more) => expand(more, path, out),
        None => out.push(path),
    }
}

/// The top-level items of a `{…}` group (its text starts after the `{`).
fn split_group(group: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0, 0, Vec::new());
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

/// `crate::a::b` or `super::b` (seen in the file of `module`) from the crate root.
fn absolute(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = module.to_vec();
    let mut rest = path;
    match path.first()?.as_str() {
        "crate" => {
            base.clear();
            rest = &path[1..];
        }
        "self" => rest = &path[1..],
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => {} // a child module of this file
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The deepest file on a module path: [a, b, Item] -> src/a/b.rs, else src/a.rs.
fn file_of(path: &[String]) -> Option<PathBuf> {
    for n in (1..=path.len()).rev() {
        let mut f = src();
        for seg in &path[..n] {
            f.push(seg);
        }
        let f = f.with_extension("rs");
        if f.is_file() {
            return Some(f);
        }
    }
    Some(src().join("lib.rs"))
}

/// Tarjan's algorithm.
fn strongly_connected(graph: &Graph) -> Vec<Vec<PathBuf>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g PathBuf, usize>,
        low: BTreeMap<&'g PathBuf, usize>,
        stack: Vec<&'g PathBuf>,
        on_stack: BTreeSet<&'g PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g PathBuf) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let Some(w) = s.graph.get_key_value(w).map(|(k, _)| k) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}
