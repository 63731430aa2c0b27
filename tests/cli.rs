//! End-to-end tests of the `recheck` binary in a temporary home.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::{
    process::{Command, Output, Stdio},
    time::Duration,
};

use serde_json::Value;
use support::{MockServer, Reply};

fn recheck(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recheck"))
        .args(args)
        .env("RECHECK_HOME", home)
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_explains_every_subcommand() {
    let home = support::temp_home();
    let out = recheck(home.path(), &["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["ask", "traces", "model", "--home", "Exit codes"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
    let out = recheck(home.path(), &["traces", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["list", "show", "export", "import"] {
        assert!(text.contains(word), "traces --help lacks {word}");
    }
}

#[test]
fn ask_json_then_list_show_export_import() {
    let server = MockServer::start(vec![Reply::chat("7411 is prime.")]);
    let home = support::temp_home();
    let h = home.path();
    let out = recheck(
        h,
        &[
            "ask",
            "Is 7411 a prime number?",
            "--model",
            "openai:scripted",
            "--base-url",
            &server.url,
            "--json",
            "--no-decompose",
        ],
    );
    let answer = stdout_json(&out);
    assert_eq!(answer["answer"], "7411 is prime.");
    assert!(answer.get("decomposition").is_none(), "--no-decompose: tool claims only");
    assert_eq!(answer["model"], "openai:scripted");
    assert_eq!(answer["usage"]["prompt_tokens"], 11);
    assert_eq!(answer["usage"]["completion_tokens"], 7);
    let id = answer["trace_id"].as_str().unwrap().to_string();

    let list = stdout_json(&recheck(h, &["traces", "list", "--json"]));
    assert_eq!(list["runs"].as_array().unwrap().len(), 1);
    assert_eq!(list["runs"][0]["run"]["id"], id.as_str());
    assert_eq!(list["runs"][0]["run"]["status"], "completed");
    // The model call and the primality check of "7411 is prime" (no event repeats the
    // draft: the model call's step holds it).
    assert_eq!(list["runs"][0]["steps"], 2);
    assert_eq!(answer["verified"], true);
    assert_eq!(answer["claims"][0]["verdict"], "supported");
    assert_eq!(answer["claims"][0]["evidence"][0]["tool"], "primality");

    let show = stdout_json(&recheck(h, &["traces", "show", &id[..8], "--json"]));
    let step = &show["steps"][0];
    assert_eq!(step["payload"]["kind"], "model_call");
    assert_eq!(step["payload"]["request"]["messages"][0]["content"], "Is 7411 a prime number?");
    assert_eq!(step["payload"]["response"]["choices"][0]["text"], "7411 is prime.");

    let text = recheck(h, &["traces", "show", &id]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("7411 is prime."));

    let file = h.join("out.jsonl");
    let exported =
        stdout_json(&recheck(h, &["traces", "export", "--out", file.to_str().unwrap(), "--run", &id, "--json"]));
    assert_eq!(exported["runs"], 1);
    assert_eq!(exported["steps"], 2);

    let other = support::temp_home();
    let imported = stdout_json(&recheck(other.path(), &["traces", "import", file.to_str().unwrap(), "--json"]));
    assert_eq!(imported["runs"], 1);
    let list = stdout_json(&recheck(other.path(), &["traces", "list", "--json"]));
    assert_eq!(list["runs"][0]["run"]["id"], id.as_str());
}

#[test]
fn unknown_model_spec_is_a_usage_error() {
    let home = support::temp_home();
    let out = recheck(home.path(), &["ask", "hi", "--model", "gpt4"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown model spec \"gpt4\""), "{}", stderr(&out));
}

#[test]
fn openai_model_without_server_says_what_to_set() {
    let home = support::temp_home();
    let out = recheck(home.path(), &["ask", "hi", "--model", "openai:gpt-4o-mini"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("needs the base URL") && err.contains("hint:") && err.contains("--base-url"), "{err}");
}

#[test]
fn unreachable_url_fails_and_the_run_is_recorded() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let home = support::temp_home();
    let url = format!("http://127.0.0.1:{port}/v1");
    let out = recheck(home.path(), &["ask", "hi", "--model", "openai:m", "--base-url", &url, "--retries", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot reach the model server"), "{err}");
    assert!(err.contains("recorded as run"), "{err}");
    // Regression: the cause was printed twice ("X (recorded as run …): X").
    assert_eq!(err.matches("cannot reach the model server").count(), 1, "{err}");
    let list = stdout_json(&recheck(home.path(), &["traces", "list", "--json"]));
    let run = &list["runs"][0]["run"];
    assert_eq!(run["status"], "failed");
    assert!(run["error"].as_str().unwrap().contains("cannot reach"));
    assert_eq!(list["runs"][0]["steps"], 1, "the failed call is a step");
}

#[test]
fn log_lines_have_no_colour_codes_off_a_terminal() {
    // Regression: HTTP-client log lines carried ANSI colours into files and pipes.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let home = support::temp_home();
    let url = format!("http://127.0.0.1:{port}/v1");
    let out = Command::new(env!("CARGO_BIN_EXE_recheck"))
        .args(["ask", "hi", "--model", "openai:m", "--base-url", &url, "--retries", "0"])
        .env("RECHECK_HOME", home.path())
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(err.contains("DEBUG") || err.contains("INFO"), "verbose logs expected: {err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn unusable_home_dir_is_a_clear_error() {
    let dir = support::temp_home();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = recheck(&file, &["traces", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));
}

#[test]
fn bad_usage_exits_2() {
    let home = support::temp_home();
    let out = recheck(home.path(), &["ask"]);
    assert_eq!(out.status.code(), Some(2));
    let out = recheck(home.path(), &["traces", "show", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no run with id"), "{}", stderr(&out));
}

#[test]
fn killed_ask_leaves_an_incomplete_run() {
    let server = MockServer::start(vec![Reply::Hang]);
    let home = support::temp_home();
    let mut child = Command::new(env!("CARGO_BIN_EXE_recheck"))
        .args(["ask", "hi", "--model", "openai:m", "--base-url", &server.url])
        .env("RECHECK_HOME", home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the request reaches the server: the run is stored by then.
    for _ in 0..200 {
        if server.hits() > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(server.hits(), 1);
    child.kill().unwrap();
    child.wait().unwrap();
    let list = stdout_json(&recheck(home.path(), &["traces", "list", "--json"]));
    assert_eq!(list["runs"][0]["run"]["status"], "incomplete");
}

#[test]
fn an_experiment_in_which_every_item_failed_fails_and_says_why() {
    // Regression: `eval run` exited 0 with a "completed" experiment when the server
    // answered 401 to every call.
    let server = MockServer::start(vec![Reply::status(401, r#"{"error":{"message":"bad key"}}"#)]);
    let home = support::temp_home();
    let spec = support::one_item_spec(&home.path().join("spec"));
    let out = recheck(
        home.path(),
        &["eval", "run", spec.to_str().unwrap(), "--model", "openai:m", "--base-url", &server.url, "--retries", "0"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no item completed") && err.contains("401"), "{err}");
    let list = recheck(home.path(), &["eval", "list", "--json"]);
    let row: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(row["status"], "failed");
}

#[test]
fn questions_from_stdin_or_a_file_and_numbers_checked_at_the_edge() {
    let server = MockServer::start(vec![Reply::chat("7411 is prime.")]);
    let home = support::temp_home();
    let base = ["--model", "openai:m", "--base-url", server.url.as_str(), "--json", "--no-decompose"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_recheck"))
        .args(["ask", "-"])
        .args(base)
        .env("RECHECK_HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"Is 7411 a prime number?\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout_json(&out)["answer"], "7411 is prime.");
    let sent = server.requests.lock().unwrap()[0]["messages"][0]["content"].clone();
    assert_eq!(sent, "Is 7411 a prime number?");
    let file = home.path().join("q.txt");
    std::fs::write(&file, "Is 7411 a prime number?").unwrap();
    let mut args = vec!["ask", "--file", file.to_str().unwrap()];
    args.extend(base);
    assert_eq!(stdout_json(&recheck(home.path(), &args))["answer"], "7411 is prime.");
    for bad in [["--temperature", "NaN"], ["--temperature", "1e39"], ["--max-calls", "0"]] {
        let mut args = vec!["ask", "hi"];
        args.extend(base);
        args.extend(bad);
        let out = recheck(home.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }
    // Nothing bad was stored: the store still exports.
    let export = recheck(home.path(), &["traces", "export", "--out", home.path().join("all.jsonl").to_str().unwrap()]);
    assert!(export.status.success(), "{}", stderr(&export));
    // `--out -` is standard output, byte for byte the file's content.
    let piped = recheck(home.path(), &["traces", "export", "--out", "-"]);
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert_eq!(piped.stdout, std::fs::read(home.path().join("all.jsonl")).unwrap());
    assert!(stderr(&piped).contains("exported 2 runs"), "{}", stderr(&piped));
}

/// An OTLP/HTTP receiver on loopback (on its own runtime) keeping each request's trace ids.
fn otlp_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>, tokio::runtime::Runtime) {
    use prost::Message as _;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                let request =
                    opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(body).unwrap();
                for span in request.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans) {
                    keep.lock().unwrap().push(span.trace_id.clone());
                }
                Vec::<u8>::new()
            }
        }),
    );
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got, runtime)
}

#[test]
fn replay_runs_forks_a_batch_and_traces_export_sends_runs_over_otlp() {
    let home = support::temp_home();
    for seed in 0..4 {
        let spec = format!("sim:accuracy=0.5,seed={seed}");
        let out =
            recheck(home.path(), &["ask", "Is 7411 a prime number?", "--model", &spec, "--tag", "week", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let page = home.path().join("forks.html");
    let fork = ["replay", "--runs", "tag=week", "--change", "strategy=critic", "--model", "sim:accuracy=1,seed=9"];
    let out = recheck(home.path(), &[&fork[..], &["--json", "--html", page.to_str().unwrap()]].concat());
    let report = stdout_json(&out);
    assert_eq!(report["selected"], 4);
    assert_eq!(report["pairs"].as_array().unwrap().len(), 4, "{report}");
    let total: u64 = report["flips"].as_array().unwrap().iter().map(|f| f["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 4);
    assert!(std::fs::read_to_string(&page).unwrap().contains("Verdict flips"));
    let out = recheck(home.path(), &fork);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("verdict flips") && text.contains("refuted"), "{text}");

    // The forks are not selected again; bad filters are usage errors naming the key.
    let out = recheck(home.path(), &["replay", "--runs", "colour=red", "--change", "none", "--model", "sim:seed=1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("colour"));
    let out = recheck(home.path(), &["replay", "--runs", "kind=serve", "--change", "none", "--model", "sim:seed=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no stored"), "{}", stderr(&out));
    let out = recheck(home.path(), &["replay", "--runs", "tag=week"]);
    assert_eq!(out.status.code(), Some(2), "a batch needs a change: {}", stderr(&out));

    // The four originals over OTLP: one trace each.
    let (url, got, _runtime) = otlp_receiver();
    let out = recheck(home.path(), &["traces", "export", "--otlp", &url, "--runs", "tag=week", "--json"]);
    let counts = stdout_json(&out);
    assert_eq!((counts["runs"].as_u64(), counts["failed"].as_u64()), (Some(4), Some(0)), "{counts}");
    let traces: std::collections::BTreeSet<Vec<u8>> = got.lock().unwrap().iter().cloned().collect();
    assert_eq!(traces.len(), 4);
    assert_eq!(counts["spans"].as_u64().unwrap() as usize, got.lock().unwrap().len());

    // Live: `ask --otlp` sends its run as it finishes.
    let out = recheck(home.path(), &["ask", "Is 7 a prime number?", "--model", "sim:seed=5", "--otlp", &url, "--json"]);
    let answer = stdout_json(&out);
    assert!(stderr(&out).contains("OTLP: 1 runs"), "{}", stderr(&out));
    let id: uuid::Uuid = answer["trace_id"].as_str().unwrap().parse().unwrap();
    assert!(got.lock().unwrap().iter().any(|t| t.as_slice() == id.as_bytes()), "the live run's trace arrived");

    // A collector that is down: exit 1, nothing in the store touched.
    let before = stdout_json(&recheck(home.path(), &["traces", "list", "--json"]));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("http://127.0.0.1:{port}");
    let out = recheck(home.path(), &["traces", "export", "--otlp", &dead]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not delivered"), "{}", stderr(&out));
    assert_eq!(stdout_json(&recheck(home.path(), &["traces", "list", "--json"])), before);
    let out = recheck(home.path(), &["traces", "export", "--otlp", "localhost:4318"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
