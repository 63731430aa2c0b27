//! The server's limits under hostile clients and failing machines (issue 28.6-13):
//! streamed pass-through inside `--max-in-flight` and `--max-reply-bytes`, bodies with
//! a total deadline, a cap on connections, the store's failure on `/health`, shutdown
//! that counts what it cut, readers that do not hang on a stopped server.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    process::Stdio,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use recheck::{
    server::{ServeConfig, ServerError, Upstream},
    trace::RunStatus,
};
use serde_json::{json, Value};

use super::{ask, json_of, post, recheck_bin, scripted, single, spawn_serve, start_with, support, MockServer, Reply};

fn upstream_of(mock: &MockServer, max_reply_bytes: usize) -> Upstream {
    Upstream { base_url: mock.url.clone(), api_key: None, model: "scripted".into(), max_reply_bytes }
}

/// A request recheck passes through (n = 2), streamed.
fn two_streamed() -> Value {
    json!({"messages": [{"role": "user", "content": "Hi"}], "n": 2, "stream": true})
}

/// Wait until `check` holds, at most 10 s.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_pass_through_holds_its_permit_and_is_stored_when_it_ends() {
    // Regression (issue 28.6): ten endless streams all ran with --max-in-flight 2, and
    // each run was stored `completed` before its stream ended.
    let mock = MockServer::start(vec![Reply::Endless]);
    let config = ServeConfig { max_in_flight: 2, ..ServeConfig::default() };
    let running = start_with(scripted(&mock, 0), single(), config, Some(upstream_of(&mock, 8 << 20))).await;
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..4 {
        let response = post(&running.url, &two_streamed(), None).await;
        match response.status().as_u16() {
            200 => open.push(response),
            429 => refused += 1,
            other => panic!("{other}"),
        }
    }
    assert_eq!((open.len(), refused), (2, 2), "two streams at once, the rest refused");
    let health: Value = reqwest::get(format!("{}/health", running.url)).await.unwrap().json().await.unwrap();
    assert_eq!(health["in_flight"], 2, "{health}");
    // Both relay events; neither run is finished while its stream runs.
    let mut first = open.remove(0).bytes_stream();
    let chunk = first.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&chunk).contains("more"));
    let runs = running.store.list_runs().unwrap();
    assert!(runs.iter().all(|r| r.status == RunStatus::Running), "{runs:?}");
    // The clients go away: each run is stored, saying so, and its permit comes back.
    drop(first);
    drop(open);
    let store = running.store.clone();
    eventually("both runs stored", || {
        store.list_runs().unwrap().iter().filter(|r| r.status == RunStatus::Failed).count() == 2
    })
    .await;
    for run in store.list_runs().unwrap() {
        assert!(run.error.as_deref().unwrap_or("").contains("cut by the client"), "{run:?}");
        let relayed = support::events(&store.steps(run.id).unwrap(), "passthrough")[0].clone();
        assert_eq!(relayed["ended"], "cut by the client");
        assert!(relayed["body"].as_str().unwrap().contains("data: "), "what was relayed is stored");
    }
    let health: Value = reqwest::get(format!("{}/health", running.url)).await.unwrap().json().await.unwrap();
    assert_eq!(health["in_flight"], 0, "{health}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_through_reply_is_capped_streamed_or_not() {
    // Regression (issue 28.7): a 100 MB pass-through reply was relayed and stored whole.
    let big = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "x".repeat(50_000)}}]});
    let mock = MockServer::start(vec![Reply::Json(big), Reply::Endless]);
    let running =
        start_with(scripted(&mock, 0), single(), ServeConfig::default(), Some(upstream_of(&mock, 10_000))).await;
    let whole = json!({"messages": [{"role": "user", "content": "Hi"}], "n": 2});
    let response = post(&running.url, &whole, None).await;
    assert_eq!(response.status(), 502);
    assert!(json_of(response).await["error"]["message"].as_str().unwrap().contains("--max-reply-bytes"));
    let response = post(&running.url, &two_streamed(), None).await;
    assert_eq!(response.status(), 200);
    let mut relayed = 0;
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        relayed += chunk.len();
    }
    assert!(relayed <= 10_000, "{relayed} bytes relayed past the cap");
    let store = running.shutdown().await;
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs
        .iter()
        .all(|r| r.status == RunStatus::Failed && r.error.as_deref().unwrap().contains("max-reply-bytes")));
    let stored = serde_json::to_string(&store.steps(runs[1].id).unwrap()).unwrap();
    assert!(stored.len() < 20_000, "at most the cap is stored: {} bytes", stored.len());
}

/// Send `head` then `body` one byte every `gap`, and read the answer's status line.
fn trickle(url: &str, head: &str, body: &[u8], gap: Duration) -> (String, Duration) {
    let addr = url.trim_start_matches("http://");
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    sock.write_all(head.as_bytes()).unwrap();
    for b in body {
        if sock.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(gap);
    }
    let mut answer = vec![0u8; 512];
    let n = sock.read(&mut answer).unwrap_or(0);
    let text = String::from_utf8_lossy(&answer[..n]).lines().next().unwrap_or("").to_string();
    (text, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_has_a_total_deadline_and_a_declared_length_over_the_limit_is_refused_at_once() {
    // Regression (issue 28.8): a body sent a byte every 0.3 s never timed out, and
    // `Content-Length: 999999999999` waited 30 s for its 400.
    let mock = MockServer::start(vec![Reply::chat("Fine.")]);
    let config = ServeConfig { body_timeout: Duration::from_secs(1), ..ServeConfig::default() };
    let running = start_with(scripted(&mock, 0), single(), config, Some(upstream_of(&mock, 8 << 20))).await;
    let url = running.url.clone();
    let (slow, huge) = tokio::task::spawn_blocking(move || {
        let body = ask("Hi?").to_string();
        let head = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
        let slow = trickle(&url, &head, body.as_bytes(), Duration::from_millis(300));
        let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 999999999999\r\n\r\n";
        let huge = trickle(&url, head, b"", Duration::ZERO);
        (slow, huge)
    })
    .await
    .unwrap();
    assert!(slow.0.contains("408"), "{slow:?}");
    assert!(slow.1 < Duration::from_secs(5), "cut at the deadline: {slow:?}");
    assert!(huge.0.contains("413"), "{huge:?}");
    assert!(huge.1 < Duration::from_secs(2), "refused at once: {huge:?}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_until_one_closes() {
    let mock = MockServer::start(vec![Reply::chat("Fine.")]);
    let config = ServeConfig { max_connections: 2, ..ServeConfig::default() };
    let running = start_with(scripted(&mock, 0), single(), config, Some(upstream_of(&mock, 8 << 20))).await;
    let addr = running.url.trim_start_matches("http://").to_string();
    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = running.url.clone();
    let third = tokio::spawn(async move {
        let started = Instant::now();
        let status = reqwest::get(format!("{url}/health")).await.unwrap().status();
        (status, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!third.is_finished(), "a third connection was served while two were open");
    drop(idle);
    let (status, waited) = third.await.unwrap();
    assert_eq!(status, 200);
    assert!(waited >= Duration::from_millis(600), "{waited:?}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_match_bearer_in_any_case_and_an_ambiguous_prefix_is_a_bad_request() {
    let mock = MockServer::start(vec![Reply::chat("Fine.")]);
    let config = ServeConfig { api_key: Some("sekrit".into()), ..ServeConfig::default() };
    let running = start_with(scripted(&mock, 0), single(), config, Some(upstream_of(&mock, 8 << 20))).await;
    let http = reqwest::Client::new();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response =
            http.get(format!("{}/v1/models", running.url)).header("authorization", format!("{scheme} sekrit")).send();
        assert_eq!(response.await.unwrap().status(), 200, "{scheme}");
    }
    let wrong = http.get(format!("{}/v1/models", running.url)).header("authorization", "bearer nope").send();
    assert_eq!(wrong.await.unwrap().status(), 401);
    for _ in 0..2 {
        assert_eq!(post(&running.url, &ask("Hi?"), Some("sekrit")).await.status(), 200);
    }
    let ids: Vec<String> = running.store.list_runs().unwrap().iter().map(|r| r.id.to_string()).collect();
    let shared: String = ids[0].chars().zip(ids[1].chars()).take_while(|(a, b)| a == b).map(|(a, _)| a).collect();
    let export = http.get(format!("{}/recheck/v1/export?run={shared}", running.url)).bearer_auth("sekrit").send();
    let response = export.await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(json_of(response).await["error"]["message"].as_str().unwrap().contains("matches 2 runs"));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_past_its_grace_says_how_many_runs_it_cut() {
    // Regression (issue 28.10): it said "every run is stored" and exited 0.
    let mock = MockServer::start(vec![Reply::Hang]);
    let config = ServeConfig { shutdown_grace: Duration::from_millis(500), ..ServeConfig::default() };
    let mut running = start_with(scripted(&mock, 0), single(), config, Some(upstream_of(&mock, 8 << 20))).await;
    let url = running.url.clone();
    let pending = tokio::spawn(async move { post(&url, &ask("Hi?"), None).await.status() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = running.stop.take().unwrap().send(());
    match running.done.await.unwrap() {
        Err(ServerError::RunsCut { cut: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
    pending.abort();
}

#[test]
fn a_full_disk_makes_health_say_so_and_the_server_exit_non_zero() {
    // Regression (issue 28.9): after the disk filled, every request failed while
    // /health said ok, until a restart. A file size limit stands in for the full disk.
    let home = support::temp_home();
    let h = home.path().to_str().unwrap().to_string();
    let bin = env!("CARGO_BIN_EXE_recheck");
    let script = format!(
        "trap '' XFSZ; ulimit -f 2048; exec {bin} --home {h} serve --model sim:seed=1 --listen 127.0.0.1:0 --no-decompose --json"
    );
    let (mut child, url) = spawn_serve(std::process::Command::new("sh").args(["-c", &script]), Stdio::piped());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let long = ask(&format!("{} What is 2 + 2?", "Consider this. ".repeat(6_000)));
    let mut statuses = Vec::new();
    let health = rt.block_on(async {
        for _ in 0..60 {
            let Ok(response) = reqwest::Client::new()
                .post(format!("{url}/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(long.to_string())
                .send()
                .await
            else {
                break;
            };
            statuses.push(response.status().as_u16());
            if response.status() == 500 {
                break;
            }
        }
        reqwest::get(format!("{url}/health")).await.ok().map(|r| r.status().as_u16())
    });
    assert!(statuses.contains(&200) && statuses.last() == Some(&500), "{statuses:?}");
    // Either the health check saw the failure or the server had already stopped.
    assert!(matches!(health, Some(503) | None), "{health:?}");
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!status.success(), "the server exits non-zero so a supervisor restarts it: {err}");
    assert!(err.contains("trace store failed"), "{err}");
    // Every run acknowledged before the failure is there on restart.
    let acknowledged = statuses.iter().filter(|s| **s == 200).count();
    let list = recheck_bin().args(["--home", &h, "traces", "list", "--json"]).output().unwrap();
    let listed: Value = serde_json::from_slice(&list.stdout).unwrap_or_default();
    let completed =
        listed["runs"].as_array().map_or(0, |r| r.iter().filter(|r| r["run"]["status"] == "completed").count());
    assert!(completed >= acknowledged, "{completed} completed runs stored, {acknowledged} acknowledged");
}

#[test]
fn readers_pass_over_a_stale_or_silent_server() {
    // Regression (issue 28.11 and 12): a serve.json naming a reused PID locked readers
    // out, and a stopped server hung them.
    let home = support::temp_home();
    let h = home.path().to_str().unwrap().to_string();
    let out = recheck_bin().args(["--home", &h, "ask", "What is 2 + 2?", "--model", "sim:seed=1"]).output().unwrap();
    assert!(out.status.success());
    // PID 1 is alive but holds no store.
    std::fs::write(home.path().join("serve.json"), r#"{"url": "http://127.0.0.1:9", "pid": 1}"#).unwrap();
    let list = recheck_bin().args(["--home", &h, "traces", "list", "--json"]).output().unwrap();
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&list.stdout).unwrap()["runs"].as_array().unwrap().len(), 1);
    // A live server that holds the store, stopped with SIGSTOP: the reader waits a few
    // seconds, says so, and reads a snapshot.
    let mut serve = recheck_bin();
    serve.args(["--home", &h, "serve", "--model", "sim:seed=1", "--listen", "127.0.0.1:0", "--json"]);
    let (mut child, _) = spawn_serve(&mut serve, Stdio::null());
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let started = Instant::now();
    let list = recheck_bin().args(["--home", &h, "traces", "list", "--json"]).output().unwrap();
    let waited = started.elapsed();
    let _ = std::process::Command::new("kill").args(["-CONT", &pid]).status();
    let _ = child.kill();
    let _ = child.wait();
    let err = String::from_utf8_lossy(&list.stderr);
    assert!(list.status.success(), "{err}");
    assert!(err.contains("did not answer") && err.contains("snapshot"), "{err}");
    assert!(waited < Duration::from_secs(15), "{waited:?}");
    assert_eq!(serde_json::from_slice::<Value>(&list.stdout).unwrap()["runs"].as_array().unwrap().len(), 1);
}
