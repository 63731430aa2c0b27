//! The library's modules depend only on the modules below them: every `crate::NAME`
//! path (in `use` trees too) of a module names a lower layer. The layers are the
//! ones `src/lib.rs` documents.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// Bottom first; a module may use those before it in this list.
const LAYERS: [&str; 14] = [
    "files",
    "trace",
    "corpus",
    "home",
    "tools",
    "datasets",
    "analysis",
    "llm",
    "embed",
    "agents",
    "orchestrator",
    "eval",
    "telemetry",
    "server",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level names of the `use` tree starting right after `crate::{`.
fn tree_names(body: &str) -> Vec<String> {
    let (mut depth, mut names, mut current) = (0, Vec::new(), String::new());
    for ch in body.chars() {
        match ch {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => names.push(std::mem::take(&mut current)),
            _ if depth == 0 => current.push(ch),
            _ => {}
        }
    }
    names.push(current);
    names
        .iter()
        .filter_map(|n| n.trim().split(|c: char| !(c.is_alphanumeric() || c == '_')).next().map(str::to_string))
        .filter(|n| !n.is_empty())
        .collect()
}

/// Every module a file's code names through `crate::` (comments and tests left out).
fn crate_uses(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let code: String = code.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let mut used = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(body) = rest.strip_prefix('{') {
            used.extend(tree_names(body));
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            used.insert(name);
        }
    }
    used
}

#[test]
fn no_module_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut upward = Vec::new();
    let mut checked = 0;
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy();
        let top = top.trim_end_matches(".rs");
        let Some(own) = rank(top) else { continue };
        checked += 1;
        for used in crate_uses(&std::fs::read_to_string(file).unwrap()) {
            if rank(&used).is_some_and(|r| r > own) {
                upward.push(format!("{} uses crate::{used}", rel.display()));
            }
        }
    }
    assert!(checked > 40, "only {checked} files checked");
    assert!(upward.is_empty(), "upward dependencies:\n{}", upward.join("\n"));
}

#[test]
fn the_checker_sees_nested_use_trees() {
    let uses = crate_uses(
        "use crate::{\n    llm::{A, B},\n    tools::{c, d},\n};\nfn f() { crate::eval::x(); } // crate::cli",
    );
    assert_eq!(uses.into_iter().collect::<Vec<_>>(), ["eval", "llm", "tools"]);
}
