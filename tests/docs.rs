//! The docs name only real commands and flags: every `recheck ...` line of a shell
//! block in README.md and docs/*.md is checked against the binary's own `--help`
//! (its subcommands exist, and each `--flag` it uses is one they take). The pages'
//! Python examples are run by python/tests/test_package.py, the README's tour by
//! scripts/docs-tour.py.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::BTreeMap, path::Path, process::Command};

/// The `recheck` lines of the ```sh blocks of `text`, continuation lines joined.
fn command_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_sh = !in_sh && line.trim_start().trim_start_matches('`').trim() == "sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = line.split(" # ").next().unwrap_or("").trim_end();
        if !pending.is_empty() {
            pending.push(' ');
            pending.push_str(code.trim_end_matches('\\'));
            if !code.ends_with('\\') {
                lines.push(std::mem::take(&mut pending));
            }
            continue;
        }
        let code = code.trim_start();
        if code.starts_with("recheck ") {
            if code.ends_with('\\') {
                pending = code.trim_end_matches('\\').to_string();
            } else {
                lines.push(code.to_string());
            }
        }
    }
    lines
}

/// The subcommand path of a line (`traces export`) and the long flags it uses.
fn parse(line: &str) -> (Vec<String>, Vec<String>) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut path = Vec::new();
    for w in &words[1..] {
        if w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-') && path.len() < 2 {
            path.push(w.to_string());
        } else {
            break;
        }
    }
    let flags = words
        .iter()
        .filter_map(|w| w.trim_start_matches('[').strip_prefix("--"))
        .map(|f| f.split(['=', ']', '|']).next().unwrap_or("").to_string())
        .filter(|f| !f.is_empty())
        .collect();
    (path, flags)
}

fn help(path: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_recheck")).args(path).arg("--help").output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn the_docs_name_only_real_commands_and_flags() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let mut helps = BTreeMap::new();
    let (mut checked, mut wrong) = (0, Vec::new());
    for page in &pages {
        for line in command_lines(&std::fs::read_to_string(page).unwrap()) {
            wrong.extend(unknown_flags(&line, &mut helps).into_iter().map(|w| format!("{}: {w}", page.display())));
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} command lines found");
    assert!(wrong.is_empty(), "the docs name flags that do not exist:\n{}", wrong.join("\n"));
}

/// What is wrong with one command line: each flag its subcommand does not take.
fn unknown_flags(line: &str, helps: &mut BTreeMap<Vec<String>, String>) -> Vec<String> {
    let (mut path, flags) = parse(line);
    // A word after the subcommand that is not one of its subcommands is an argument.
    while !path.is_empty() {
        let text = helps.entry(path.clone()).or_insert_with(|| help(&path));
        if !text.contains("unrecognized subcommand") && !text.contains("error:") {
            break;
        }
        path.pop();
    }
    let text = helps.entry(path.clone()).or_insert_with(|| help(&path)).clone();
    flags
        .into_iter()
        .filter(|flag| !text.contains(&format!("--{flag}")))
        .map(|flag| format!("`{line}`: `recheck {}` has no --{flag}", path.join(" ")))
        .collect()
}

#[test]
fn command_lines_are_read_with_continuations_and_options() {
    let text = "```sh\nrecheck serve --model openai:m \\\n  --base-url URL   # a comment --nope\nls\n```\n\
                ```python\nrecheck ask --fake\n```\n";
    let lines: Vec<String> =
        command_lines(text).iter().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(lines, ["recheck serve --model openai:m --base-url URL"]);
    assert_eq!(
        parse("recheck eval run x.toml [--limit N] [--judge model|lexical]"),
        (vec!["eval".into(), "run".into()], vec!["limit".into(), "judge".into()])
    );
    let mut helps = BTreeMap::new();
    assert_eq!(unknown_flags("recheck traces export --out x --nope", &mut helps).len(), 1);
    assert!(unknown_flags("recheck traces export --out x --run ID", &mut helps).is_empty());
}
