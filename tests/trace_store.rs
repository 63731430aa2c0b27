//! The sled trace store: ordering, durability under SIGKILL, JSONL round-trip, bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::Arc,
};

use chrono::Utc;
use recheck::{
    llm::{ChatModel, ChatRequest, Message, OpenAiBackend, OpenAiOptions, RecordingModel, RetryConfig},
    trace::{RunRecorder, RunStatus, StepPayload, StepRecord, TraceError, TraceStore, SCHEMA_VERSION},
};
use serde_json::json;
use support::{MockServer, Reply};

/// A tool call step: durable when recorded (an event waits for the next call).
async fn tool_step(recorder: &RunRecorder, i: u32) -> StepRecord {
    let payload = StepPayload::ToolCall {
        tool: "arithmetic".into(),
        input: json!({"i": i, "pad": "x".repeat(200)}),
        output: Some(json!(0.1 + f64::from(i) / 3.0)),
    };
    recorder
        .record(recorder.reserve(), "tool_checker", (chrono::Utc::now(), std::time::Instant::now()), payload, None)
        .await
        .unwrap()
}

async fn run_with_steps(store: &TraceStore, n: u32) -> recheck::trace::RunId {
    let run = store.create_run("test", json!({"question": "q"}), json!({"seed": 7}), None).await.unwrap();
    let recorder = RunRecorder::new(store.clone(), run.id, 0);
    for i in 0..n {
        tool_step(&recorder, i).await;
    }
    run.id
}

#[tokio::test]
async fn steps_read_back_in_order_past_byte_boundaries() {
    let store = TraceStore::temporary().unwrap();
    let id = run_with_steps(&store, 300).await;
    let steps = store.steps(id).unwrap();
    assert_eq!(steps.len(), 300);
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step.index as usize, i);
        assert_eq!(step.schema, SCHEMA_VERSION);
    }
    // Another run's steps never leak into this one.
    let other = run_with_steps(&store, 3).await;
    assert_eq!(store.steps(id).unwrap().len(), 300);
    assert_eq!(store.steps(other).unwrap().len(), 3);
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id, other], "oldest first");
}

#[tokio::test]
async fn failed_model_calls_are_recorded_with_their_error() {
    let server = MockServer::start(vec![Reply::status(400, r#"{"error":{"message":"no such model"}}"#)]);
    let mut options = OpenAiOptions::new(&server.url);
    options.retry = RetryConfig { max_retries: 0, ..Default::default() };
    let model: Arc<dyn ChatModel> = Arc::new(OpenAiBackend::new("m", options).unwrap());
    let store = TraceStore::temporary().unwrap();
    let run = store.create_run("test", json!({}), json!({}), None).await.unwrap();
    let recorder = RunRecorder::new(store.clone(), run.id, 0);
    let request = ChatRequest::new(vec![Message::user("hi")]);
    let err = RecordingModel::new(&recorder, "solver", model).chat(&request).await.unwrap_err();
    let steps = store.steps(run.id).unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].agent, "solver");
    assert_eq!(steps[0].error.as_deref(), Some(err.to_string().as_str()));
    match &steps[0].payload {
        StepPayload::ModelCall { request: recorded, response, model } => {
            assert_eq!(recorded, &request);
            assert!(response.is_none());
            assert_eq!(model.spec, "openai:m");
            assert_eq!(model.capabilities.map(|c| c.prefill), Some(false), "capabilities are recorded for replay");
        }
        other => panic!("unexpected payload {other:?}"),
    }
}

#[tokio::test]
async fn export_import_round_trip_is_lossless() {
    let dir = tempfile::tempdir().unwrap();
    let a = TraceStore::open(dir.path().join("a")).unwrap();
    let id = run_with_steps(&a, 5).await;
    // A model-call step with floats and unicode, as real runs have.
    let recorder = RunRecorder::new(a.clone(), id, 5);
    let step = StepRecord {
        schema: SCHEMA_VERSION,
        run_id: id,
        index: recorder.reserve(),
        agent: "solver".into(),
        started_at: Utc::now(),
        latency_ms: 12,
        payload: StepPayload::Scoring {
            model: recheck::llm::ModelInfo {
                weights_sha256: Some("ab".into()),
                ..recheck::llm::ModelInfo::new("local", "local")
            },
            messages: vec![Message::user("Ünïcode ✓ \"quoted\"\n")],
            continuation: "0.1 + 0.2".into(),
            score: Some(recheck::llm::ContinuationScore {
                total_logprob: 0.1 + 0.2,
                tokens: vec![recheck::llm::TokenLogprob { token: "x".into(), logprob: -1e-300, top: vec![] }],
            }),
        },
        error: None,
    };
    a.append_step(&step).await.unwrap();
    a.finish_run(id, RunStatus::Completed, Some(json!({"answer": "7411 is prime", "p": 1.0 / 3.0})), None)
        .await
        .unwrap();

    let first = dir.path().join("first.jsonl");
    let counts = a.export_jsonl(&first, &[]).unwrap();
    assert_eq!((counts.runs, counts.steps), (1, 6));

    let b = TraceStore::open(dir.path().join("b")).unwrap();
    let imported = b.import_jsonl(&first).unwrap();
    assert_eq!((imported.runs, imported.steps, imported.skipped_runs), (1, 6, 0));
    assert_eq!(b.run(id).unwrap(), a.run(id).unwrap());
    assert_eq!(b.steps(id).unwrap(), a.steps(id).unwrap());

    let second = dir.path().join("second.jsonl");
    b.export_jsonl(&second, &[]).unwrap();
    assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap(), "byte-identical re-export");

    // Importing again skips what is present.
    let again = b.import_jsonl(&first).unwrap();
    assert_eq!((again.runs, again.skipped_runs), (0, 1));
}

#[tokio::test]
async fn bad_import_names_the_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = TraceStore::open(dir.path().join("a")).unwrap();
    run_with_steps(&a, 2).await;
    let good = dir.path().join("good.jsonl");
    a.export_jsonl(&good, &[]).unwrap();
    let mut lines: Vec<String> = std::fs::read_to_string(&good).unwrap().lines().map(String::from).collect();
    lines.insert(2, "{not json".into());
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n")).unwrap();

    let b = TraceStore::open(dir.path().join("b")).unwrap();
    let err = b.import_jsonl(&bad).unwrap_err();
    assert!(matches!(err, TraceError::BadImport { line: 3, .. }), "{err}");
    assert!(err.to_string().contains("bad.jsonl:3"), "{err}");
    assert!(b.list_runs().unwrap().is_empty(), "nothing written");

    // A step whose run is missing.
    std::fs::write(&bad, lines[1..2].join("\n")).unwrap();
    let err = b.import_jsonl(&bad).unwrap_err();
    assert!(err.to_string().contains("run record is not in the file"), "{err}");

    // A record from a newer schema.
    let newer =
        lines[0].replacen(&format!("\"schema\":{SCHEMA_VERSION}"), &format!("\"schema\":{}", SCHEMA_VERSION + 1), 1);
    std::fs::write(&bad, newer).unwrap();
    let err = b.import_jsonl(&bad).unwrap_err();
    assert!(matches!(err, TraceError::NewerSchema { .. }), "{err}");

    // A missing file.
    let err = b.import_jsonl(&dir.path().join("nope.jsonl")).unwrap_err();
    assert!(err.to_string().contains("nope.jsonl"), "{err}");
}

#[tokio::test]
async fn a_second_process_reads_a_snapshot_and_is_told_the_store_is_in_use_to_write() {
    // Regression: a running experiment blocked every read (`traces list`, `eval list`).
    let dir = tempfile::tempdir().unwrap();
    let held = TraceStore::open(dir.path().join("traces")).unwrap();
    let id = run_with_steps(&held, 4).await;
    let recheck = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_recheck")).args(args).env("RECHECK_HOME", dir.path()).output().unwrap()
    };
    let list = recheck(&["traces", "list", "--json"]);
    let show = recheck(&["traces", "show", &id.to_string(), "--json"]);
    let write = recheck(&["traces", "import", dir.path().join("none.jsonl").to_str().unwrap()]);
    let still_held = held.steps(id).unwrap().len();
    drop(held);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    assert!(String::from_utf8_lossy(&list.stderr).contains("snapshot"));
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(listed["runs"][0]["run"]["id"], id.to_string());
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["steps"].as_array().unwrap().len(), still_held);
    assert_eq!(write.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&write.stderr);
    assert!(stderr.contains("in use by another recheck process"), "{stderr}");
}

/// Body of the child process in `sigkill_keeps_every_completed_step`: writes steps
/// forever, printing each index once it is flushed. Run only by that test.
#[tokio::test]
#[ignore = "child-process body for sigkill_keeps_every_completed_step; does nothing on its own"]
async fn child_writes_steps_until_killed() {
    let Ok(path) = std::env::var("RECHECK_KILL_TEST_STORE") else { return };
    let store = TraceStore::open(path).unwrap();
    let run = store.create_run("kill-test", json!({}), json!({}), None).await.unwrap();
    // The harness prints "test ... " before our first line, so markers are searched, not prefixed.
    println!("RUN_ID={}", run.id);
    let recorder = RunRecorder::new(store.clone(), run.id, 0);
    for i in 0.. {
        recorder.event("writer", "tick", json!({"i": i})).await.unwrap();
        let step = tool_step(&recorder, i).await;
        // As before a model call: what was recorded is synced.
        recorder.sync_steps().await.unwrap();
        println!("flushed {}", step.index);
    }
}

#[test]
fn sigkill_keeps_every_completed_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_writes_steps_until_killed", "--nocapture", "--test-threads=1"])
        .env("RECHECK_KILL_TEST_STORE", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut run_id = None;
    let mut last_flushed = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some((_, id)) = line.split_once("RUN_ID=") {
            run_id = Some(id.trim().to_string());
        }
        if let Some(i) = line.strip_prefix("flushed ") {
            let i: u32 = i.trim().parse().unwrap();
            last_flushed = Some(i);
            if i >= 40 {
                break;
            }
        }
    }
    // SIGKILL: no destructors, no final flush.
    child.kill().unwrap();
    child.wait().unwrap();
    let last_flushed = last_flushed.expect("child flushed no steps");

    let store = TraceStore::open(&path).unwrap();
    let id = store.resolve(&run_id.expect("child printed no run id")).unwrap();
    let run = store.run(id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Incomplete, "a dead process's run is marked incomplete");
    let steps = store.steps(id).unwrap();
    assert!(steps.len() as u32 > last_flushed, "{} steps stored, step {last_flushed} was flushed", steps.len());
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step.index as usize, i, "no gaps");
    }
}

#[tokio::test]
async fn an_unreadable_record_is_reported_and_skipped_never_blocking_the_rest() {
    // Regression: a NaN temperature was stored as `null`, and from then on export and
    // show failed for the whole store.
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir.path().join("s")).unwrap();
    let good = run_with_steps(&store, 3).await;
    let poisoned = store.create_run("test", json!({}), json!({}), None).await.unwrap();
    let recorder = RunRecorder::new(store.clone(), poisoned.id, 0);
    let mut request = ChatRequest::new(vec![Message::user("hi")]);
    request.params.temperature = f32::NAN;
    let payload = StepPayload::ModelCall { model: recheck::llm::ModelInfo::new("m", "test"), request, response: None };
    let index = recorder.reserve();
    recorder.record(index, "solver", (Utc::now(), std::time::Instant::now()), payload, None).await.unwrap();
    recorder.event("solver", "after", json!({})).await.unwrap();
    assert!(store.steps(poisoned.id).is_err(), "the NaN step cannot be read back");
    let out = dir.path().join("all.jsonl");
    let counts = store.export_jsonl(&out, &[]).unwrap();
    assert_eq!((counts.runs, counts.steps, counts.unreadable.len()), (2, 4, 1), "{counts:?}");
    assert!(
        counts.unreadable[0].contains("temperature") || counts.unreadable[0].contains("null"),
        "{:?}",
        counts.unreadable
    );
    let other = TraceStore::temporary().unwrap();
    assert_eq!(other.import_jsonl(&out).unwrap().runs, 2);
    assert_eq!(other.steps(good).unwrap().len(), 3);
}

#[tokio::test]
async fn a_cut_off_export_is_refused_and_a_complete_copy_repairs_an_incomplete_run() {
    // Regression: `head -n 3 full.jsonl > cut.jsonl` imported as success, and the full
    // file later skipped the damaged run as "already present".
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir.path().join("a")).unwrap();
    let id = run_with_steps(&store, 10).await;
    let full = dir.path().join("full.jsonl");
    store.export_jsonl(&full, &[]).unwrap();
    let text = std::fs::read_to_string(&full).unwrap();
    assert!(text.lines().next().unwrap().contains("\"steps\":10"));
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, text.lines().take(3).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let fresh = TraceStore::temporary().unwrap();
    let err = fresh.import_jsonl(&cut).unwrap_err().to_string();
    assert!(err.contains("has 10 steps but the file holds 2"), "{err}");
    assert!(fresh.list_runs().unwrap().is_empty(), "nothing written");
    // A run stored short (from a file written before step counts were kept) ...
    let old_style = dir.path().join("old.jsonl");
    let first = text.lines().next().unwrap().replace(",\"steps\":10", "");
    let lines: Vec<String> = std::iter::once(first).chain(text.lines().skip(1).take(2).map(String::from)).collect();
    std::fs::write(&old_style, lines.join("\n") + "\n").unwrap();
    fresh.import_jsonl(&old_style).unwrap();
    assert_eq!(fresh.steps(id).unwrap().len(), 2);
    // ... is repaired by a complete copy.
    let counts = fresh.import_jsonl(&full).unwrap();
    assert_eq!((counts.repaired_runs, counts.skipped_runs), (1, 0));
    assert_eq!(fresh.steps(id).unwrap().len(), 10);
    let again = fresh.import_jsonl(&full).unwrap();
    assert_eq!((again.repaired_runs, again.skipped_runs), (0, 1), "complete now: skipped");
}

/// The lines of an export as JSON values.
fn export_lines(store: &TraceStore, dir: &std::path::Path, name: &str) -> Vec<serde_json::Value> {
    let file = dir.join(name);
    store.export_jsonl(&file, &[]).unwrap();
    std::fs::read_to_string(&file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn write_lines(dir: &std::path::Path, name: &str, lines: &[serde_json::Value]) -> std::path::PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    file
}

#[tokio::test]
async fn import_never_rewrites_a_stored_run() {
    // Regression (issue 28.3a): a forged copy of a completed run with one more step
    // replaced its question and answer, reported as "repaired".
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir.path().join("a")).unwrap();
    let id = run_with_steps(&store, 6).await;
    store.finish_run(id, RunStatus::Completed, Some(json!({"answer": "yes"})), None).await.unwrap();
    let original = (store.run(id).unwrap(), store.steps(id).unwrap());
    let lines = export_lines(&store, dir.path(), "all.jsonl");
    let with_step = |lines: &[serde_json::Value]| {
        let mut lines = lines.to_vec();
        let mut extra = lines[6].clone();
        extra["index"] = json!(6);
        lines.push(extra);
        lines[0]["steps"] = json!(7);
        lines
    };
    let forgeries: Vec<(&str, Vec<serde_json::Value>, &str)> = vec![
        (
            "question and answer changed",
            {
                let mut l = with_step(&lines);
                l[0]["input"] = json!({"question": "forged"});
                l[0]["output"] = json!({"answer": "forged"});
                l
            },
            "differs from the stored run of that id in its input",
        ),
        (
            "answer changed",
            {
                let mut l = with_step(&lines);
                l[0]["output"] = json!({"answer": "forged"});
                l
            },
            "import repairs only runs stored incomplete",
        ),
        (
            "a stored step changed",
            {
                let mut l = with_step(&lines);
                l[3]["latency_ms"] = json!(999);
                l
            },
            "differs from the stored step",
        ),
    ];
    for (name, forged, says) in forgeries {
        let file = write_lines(dir.path(), "forged.jsonl", &forged);
        let err = store.import_jsonl(&file).unwrap_err().to_string();
        assert!(err.contains(says), "{name}: {err}");
        assert_eq!((store.run(id).unwrap(), store.steps(id).unwrap()), original, "{name}: nothing changed");
    }
    // A run stored incomplete is repaired by a complete copy that agrees with it.
    let other = TraceStore::open(dir.path().join("b")).unwrap();
    let mut short = lines[..4].to_vec();
    short[0]["steps"] = json!(3);
    short[0]["status"] = json!("incomplete");
    for key in ["ended_at", "output"] {
        short[0].as_object_mut().unwrap().remove(key);
    }
    other.import_jsonl(&write_lines(dir.path(), "short.jsonl", &short)).unwrap();
    assert_eq!(other.run(id).unwrap().unwrap().status, RunStatus::Incomplete);
    let counts = other.import_jsonl(&dir.path().join("all.jsonl")).unwrap();
    assert_eq!((counts.repaired_runs, counts.steps), (1, 6));
    let repaired = other.run(id).unwrap().unwrap();
    assert_eq!((repaired.status, &repaired.output), (RunStatus::Completed, &Some(json!({"answer": "yes"}))));
    assert!(repaired.seq > original.0.as_ref().unwrap().seq.max(1), "its version moves forward");
    assert_eq!(other.steps(id).unwrap(), original.1);
}

#[tokio::test]
async fn import_never_takes_over_an_experiments_filled_slots() {
    // Regression (issue 28.3b): runs with an experiment's slots and newer ids replaced
    // its completed items (accuracy 0.96 -> 0.0, "imported 50 runs").
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir.path().join("a")).unwrap();
    let group = store.create_run("eval", json!({}), json!({}), None).await.unwrap();
    let mut items = Vec::new();
    for i in 0..3 {
        let slot = recheck::trace::GroupSlot { run: group.id, index: i };
        let item = store.create_member_run("eval-item", json!({"i": i}), json!({}), slot).await.unwrap();
        store.finish_run(item.id, RunStatus::Completed, Some(json!({"correct": true})), None).await.unwrap();
        items.push(item.id);
    }
    store.finish_run(group.id, RunStatus::Completed, None, None).await.unwrap();
    let lines = export_lines(&store, dir.path(), "all.jsonl");
    // The item runs again, under newer ids, with other outcomes.
    let forged: Vec<serde_json::Value> = lines
        .iter()
        .filter(|l| l["group"].is_object())
        .map(|l| {
            let mut l = l.clone();
            l["id"] = json!(recheck::trace::RunId::new().to_string());
            l["output"] = json!({"correct": false});
            l["steps"] = json!(0);
            l
        })
        .collect();
    assert_eq!(forged.len(), 3);
    let err = store.import_jsonl(&write_lines(dir.path(), "forged.jsonl", &forged)).unwrap_err().to_string();
    assert!(err.contains("which completed run") && err.contains("already fills"), "{err}");
    let members: Vec<_> = store.members(group.id).unwrap().into_iter().map(|(_, id)| id).collect();
    assert_eq!(members, items, "the slots keep their runs");
    assert_eq!(store.list_runs().unwrap().len(), 4, "nothing imported");
    // Into a store without that experiment they import as they are.
    let other = TraceStore::open(dir.path().join("b")).unwrap();
    assert_eq!(other.import_jsonl(&dir.path().join("forged.jsonl")).unwrap().runs, 3);
}
