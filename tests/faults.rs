//! The fault matrix: `recheck ask` and `recheck eval run` against a scripted server
//! that fails in each way servers do. Every case ends with a stored run whose status
//! says what happened, a clear message, and the right exit code. Beside it, a failing
//! machine (`store_damage`) and input that never ends (`bounded_input`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

#[path = "faults/bounded_input.rs"]
mod bounded_input;
#[path = "faults/store_damage.rs"]
mod store_damage;

use std::{
    path::Path,
    process::{Command, Output},
};

use serde_json::{json, Value};
use support::{MockServer, Reply};

fn recheck(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recheck")).args(args).env("RECHECK_HOME", home).output().unwrap()
}

/// A scripted server as the model: one retry, half a second an attempt, JSON output.
fn server_args(url: &str) -> [&str; 9] {
    ["--model", "openai:m", "--base-url", url, "--retries", "1", "--timeout", "0.5", "--json"]
}

fn ok(text: &str) -> Reply {
    Reply::chat(text)
}

/// One case: the script, then what must come of it.
struct Case {
    name: &'static str,
    script: Vec<Reply>,
    /// Exit code of `ask`.
    code: i32,
    /// The stored run's status.
    status: &'static str,
    /// Words the error (stderr, and the run's error) must hold; empty on success.
    says: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let status = |code: u16, headers: Vec<(String, String)>| Reply::Raw { status: code, body: "{}".into(), headers };
    vec![
        Case {
            name: "5xx then success",
            script: vec![Reply::status(503, "busy"), ok("Fine.")],
            code: 0,
            status: "completed",
            says: &[],
        },
        Case {
            name: "429 with Retry-After",
            script: vec![status(429, vec![("retry-after".into(), "0".into())]), ok("Fine.")],
            code: 0,
            status: "completed",
            says: &[],
        },
        Case {
            name: "429 without Retry-After",
            script: vec![status(429, vec![]), ok("Fine.")],
            code: 0,
            status: "completed",
            says: &[],
        },
        Case {
            name: "4xx",
            script: vec![Reply::status(400, r#"{"error":{"message":"bad request"}}"#)],
            code: 1,
            status: "failed",
            says: &["HTTP 400"],
        },
        Case { name: "timeout", script: vec![Reply::Hang], code: 1, status: "failed", says: &["timed out"] },
        Case {
            name: "stalled body",
            script: vec![Reply::Stall(r#"{"choices":"#.into())],
            code: 1,
            status: "failed",
            says: &["stalled"],
        },
        Case {
            name: "truncated body",
            script: vec![Reply::Truncated(r#"{"choices":[{"#.into())],
            code: 1,
            status: "failed",
            says: &["truncated"],
        },
        Case {
            name: "invalid JSON",
            script: vec![Reply::Bytes(b"{not json".to_vec())],
            code: 1,
            status: "failed",
            says: &["cannot read"],
        },
        Case {
            name: "invalid UTF-8",
            script: vec![Reply::Bytes(b"{\"choices\":[{\"message\":{\"content\":\"\xff\xfe\"}}]}".to_vec())],
            code: 1,
            status: "failed",
            says: &["cannot read"],
        },
        Case {
            name: "empty content",
            script: vec![Reply::Json(
                json!({"choices": [{"message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}]}),
            )],
            code: 0,
            status: "completed",
            says: &[],
        },
        Case {
            name: "oversized reply",
            script: vec![ok(&"x".repeat(50_000))],
            code: 1,
            status: "failed",
            says: &["over the limit"],
        },
    ]
}

#[test]
fn ask_under_every_fault() {
    let mut failures = Vec::new();
    for case in cases() {
        let server = MockServer::start(case.script);
        let home = support::temp_home();
        let mut args = vec!["ask", "What is 2 + 2?", "--max-reply-bytes", "10000", "--no-decompose"];
        args.extend(server_args(&server.url));
        let out = recheck(home.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let list: Value = serde_json::from_slice(&recheck(home.path(), &["traces", "list", "--json"]).stdout).unwrap();
        let run = &list["runs"][0]["run"];
        let stored_error = run["error"].as_str().unwrap_or("");
        let fine = out.status.code() == Some(case.code)
            && run["status"] == case.status
            && case.says.iter().all(|w| err.contains(w) && stored_error.contains(w));
        if !fine {
            failures.push(format!(
                "{}: exit {:?}, status {}, stderr {err:?}",
                case.name,
                out.status.code(),
                run["status"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn eval_run_under_failing_and_recovering_servers() {
    let home = support::temp_home();
    let spec = support::one_item_spec(&home.path().join("spec"));
    let run = |script: Vec<Reply>| {
        let server = MockServer::start(script);
        let mut args = vec!["eval", "run", spec.to_str().unwrap()];
        args.extend(server_args(&server.url));
        let out = recheck(home.path(), &args);
        // The newest experiment is the last line of `eval list --json`.
        let listed = recheck(home.path(), &["eval", "list", "--json"]);
        let text = String::from_utf8_lossy(&listed.stdout).to_string();
        let list: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        (out, list)
    };
    // Recovers: the item completes.
    let (out, row) = run(vec![Reply::status(502, "bad gateway"), ok("So the answer is 6.")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(row["status"], "completed");
    // Fails every call: the experiment fails and says why.
    let (out, row) = run(vec![Reply::Hang]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out"));
    assert_eq!(row["status"], "failed");
}
