//! Keeps the node library's layers true (README, "Architecture"): a module may use modules of
//! its own layer or of layers below it, never above; and no two modules use each other, directly
//! or through others (no import cycles between the files of `node/src`).
//!
//! The check reads the sources: every `crate::…` path, every `super::…` path and every use of a
//! child module a file declares (`mod x;` … `x::…`) is an edge from the file to the module file
//! it names. Test modules (from the first `#[cfg(test)]` on) and comments are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer of each top-level module, lowest first. A module may use its own layer and lower ones.
const LAYERS: &[(&str, u8)] = &[
    ("config", 0),
    ("store", 0),
    ("indexing", 0),
    ("https", 0),
    ("ops", 1),
    ("identity", 2),
    ("care", 3),
    ("directory", 3),
    ("api", 4),
    ("cli", 5),
    ("node", 5),
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Module path (`api::rpc::data`) of each library file, without `lib.rs` and `main.rs`.
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("node/src is readable")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("file names are UTF-8")
            .to_owned();
        if p.is_dir() {
            let mut next = prefix.to_vec();
            next.push(name);
            modules(&p, &next, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            if prefix.is_empty() && (name == "lib" || name == "main") {
                continue;
            }
            let mut path = prefix.to_vec();
            path.push(name);
            out.insert(path.join("::"), p);
        }
    }
}

/// The code of a file without comments and without its test module.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        // A trailing comment (`code // text`): cut at the first `//` outside a string, roughly.
        let code = match line.find(" //") {
            Some(i) if line[..i].matches('"').count() % 2 == 0 => &line[..i],
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The `::`-separated identifier path that starts at byte `i` of `code`.
fn path_at(code: &str, i: usize) -> Vec<String> {
    let bytes = code.as_bytes();
    let mut parts = Vec::new();
    let mut j = i;
    loop {
        let start = j;
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
            j += 1;
        }
        if start == j {
            break;
        }
        parts.push(code[start..j].to_owned());
        if code[j..].starts_with("::") {
            j += 2;
        } else {
            break;
        }
    }
    parts
}

/// Whether `code[i..]` starts a path (not the tail of a longer identifier or path).
fn starts_path(code: &str, i: usize) -> bool {
    let before = code[..i].chars().last();
    !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The module file a path names: its longest prefix that is a module.
fn resolve(path: &[String], mods: &BTreeMap<String, PathBuf>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| mods.contains_key(m))
}

/// Edges from `module` (whose code is `code`) to the module files it uses.
fn uses(module: &str, code: &str, mods: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let own: Vec<String> = module.split("::").map(str::to_owned).collect();
    let mut out = BTreeSet::new();
    let mut add = |path: Vec<String>| {
        if let Some(m) = resolve(&path, mods) {
            if m != module {
                out.insert(m);
            }
        }
    };
    for (i, _) in code.match_indices("crate::") {
        if starts_path(code, i) {
            add(path_at(code, i + "crate::".len()));
        }
    }
    for (i, _) in code.match_indices("super::") {
        if starts_path(code, i) {
            let mut path = own[..own.len().saturating_sub(1)].to_vec();
            path.extend(path_at(code, i + "super::".len()));
            add(path);
        }
    }
    // Children declared here and used by their relative name.
    for line in code.lines() {
        let t = line.trim();
        let Some(name) = t
            .strip_prefix("pub mod ")
            .or_else(|| t.strip_prefix("mod "))
            .and_then(|r| r.strip_suffix(';'))
        else {
            continue;
        };
        let child = format!("{module}::{name}");
        let needle = format!("{name}::");
        let used = code
            .match_indices(&needle)
            .any(|(i, _)| starts_path(code, i) || code[..i].ends_with("self::"));
        if used && mods.contains_key(&child) {
            out.insert(child);
        }
    }
    out
}

fn layer_of(module: &str) -> u8 {
    let top = module.split("::").next().unwrap_or(module);
    LAYERS
        .iter()
        .find(|(name, _)| *name == top)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| panic!("module {top} has no layer: add it to LAYERS in this test"))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut mods = BTreeMap::new();
    modules(&src_dir(), &[], &mut mods);
    assert!(mods.len() > 20, "found only {} modules", mods.len());
    mods.iter()
        .map(|(m, p)| {
            let text = std::fs::read_to_string(p).expect("source is readable");
            (m.clone(), uses(m, &code_of(&text), &mods))
        })
        .collect()
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let mut wrong = Vec::new();
    for (from, tos) in graph() {
        for to in tos {
            if layer_of(&to) > layer_of(&from) {
                wrong.push(format!(
                    "{from} (layer {}) uses {to} (layer {})",
                    layer_of(&from),
                    layer_of(&to)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn modules_do_not_use_each_other_in_a_cycle() {
    let g = graph();
    let found = cycles(&g);
    let text: Vec<String> = found
        .iter()
        .map(|c| {
            let edges: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    g[a].iter()
                        .filter(|b| c.contains(b))
                        .map(move |b| format!("  {a} -> {b}"))
                })
                .collect();
            format!("{}:\n{}", c.join(", "), edges.join("\n"))
        })
        .collect();
    assert!(found.is_empty(), "import cycles:\n{}", text.join("\n"));
}

#[test]
fn the_checker_sees_edges_and_cycles() {
    // The checker itself: a cycle and an upward edge in a made-up graph are found.
    let mut mods = BTreeMap::new();
    for m in ["care::a", "care::b", "api::rpc", "api::rpc::data"] {
        mods.insert(m.to_owned(), PathBuf::new());
    }
    let a = uses(
        "care::a",
        "use crate::care::b::Thing;\nuse crate::api::rpc::X;\n",
        &mods,
    );
    assert_eq!(
        a,
        BTreeSet::from(["care::b".to_owned(), "api::rpc".to_owned()])
    );
    let rpc = uses(
        "api::rpc",
        "pub mod data;\nfn r() { data::routes() }\n",
        &mods,
    );
    assert_eq!(rpc, BTreeSet::from(["api::rpc::data".to_owned()]));
    let data = uses(
        "api::rpc::data",
        &code_of(
            "use super::ApiError;\n// crate::care::b\nfn f() {} // crate::care::a\n\
             #[cfg(test)]\nuse crate::care::b;\n",
        ),
        &mods,
    );
    assert_eq!(data, BTreeSet::from(["api::rpc".to_owned()]));
    let g = BTreeMap::from([
        ("api::rpc".to_owned(), rpc),
        ("api::rpc::data".to_owned(), data),
        ("care::a".to_owned(), a),
        ("care::b".to_owned(), BTreeSet::new()),
    ]);
    assert_eq!(
        cycles(&g),
        vec![vec!["api::rpc".to_owned(), "api::rpc::data".to_owned()]]
    );
    assert!(layer_of("api::rpc") > layer_of("care::a"));
}
