//! Tests of the store's own invariants (the crate's integration tests drive it from outside).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::trace::wal::{self, Kind, Wal};
use crate::trace::{RunStatus, StepRecord};
use chrono::Utc;

#[tokio::test]
async fn refuses_a_store_from_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces");
    {
        let store = TraceStore::open(&path).unwrap();
        store.db.insert(META_SCHEMA_KEY, &(SCHEMA_VERSION + 1).to_be_bytes()).unwrap();
        store.db.flush().unwrap();
    }
    let err = TraceStore::open(&path).unwrap_err();
    assert!(matches!(err, TraceError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1), "{err}");
    assert!(err.to_string().contains("upgrade recheck"));
}

#[tokio::test]
async fn refuses_a_record_from_a_newer_schema() {
    let store = TraceStore::temporary().unwrap();
    let mut run = store.create_run("ask", serde_json::json!("q"), serde_json::json!({}), None).await.unwrap();
    run.schema = SCHEMA_VERSION + 1;
    store.put(&store.runs, run.id.as_bytes(), &run).unwrap();
    let err = store.run(run.id).unwrap_err();
    assert!(matches!(err, TraceError::NewerSchema { .. }), "{err}");
}

#[tokio::test]
async fn resolves_unique_prefixes_only() {
    let store = TraceStore::temporary().unwrap();
    let a = store.create_run("ask", serde_json::json!(1), serde_json::json!({}), None).await.unwrap();
    let full = a.id.to_string();
    assert_eq!(store.resolve(&full).unwrap(), a.id);
    assert_eq!(store.resolve(&full[..13]).unwrap(), a.id);
    assert!(matches!(store.resolve("zzzz"), Err(TraceError::NoSuchRun(_))));
    assert!(matches!(store.resolve("ab"), Err(TraceError::NoSuchRun(_))));
    // A short prefix that several runs share says so (it said "no run").
    let b = store.create_run("ask", serde_json::json!(2), serde_json::json!({}), None).await.unwrap();
    let shared: String =
        full.chars().zip(b.id.to_string().chars()).take_while(|(x, y)| x == y).map(|(x, _)| x).collect();
    assert!(!shared.is_empty());
    assert!(matches!(store.resolve(&shared[..1]), Err(TraceError::AmbiguousRun { count: 2, .. })));
}
fn tool_call(i: u32) -> crate::trace::StepPayload {
    crate::trace::StepPayload::ToolCall {
        tool: "t".into(),
        input: serde_json::json!(i),
        output: Some(serde_json::json!(i)),
    }
}

#[tokio::test]
async fn synced_steps_are_kept_by_the_log_until_sled_has_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces");
    let store = TraceStore::open(&path).unwrap();
    let config = serde_json::json!({"model": "m", "prompt": "x".repeat(2000)});
    let run = store.create_run("t", serde_json::json!({}), config.clone(), None).await.unwrap();
    let recorder = crate::trace::RunRecorder::new(store.clone(), run.id, 0);
    for i in 0..50 {
        recorder
            .record(recorder.reserve(), "tool", (Utc::now(), std::time::Instant::now()), tool_call(i), None)
            .await
            .unwrap();
    }
    recorder.event("a", "after", serde_json::json!({})).await.unwrap();
    recorder.sync_steps().await.unwrap();
    // Synced through the log, not through sled: the log holds them.
    let logged = std::fs::metadata(path.join(wal::FILE)).unwrap().len();
    assert!(logged > 50 * 100, "{logged} bytes logged");
    // A copy taken now (a crash, or another process's snapshot) replays the log:
    // every synced step, the run still `running`.
    let copy = TraceStore::open_snapshot(&path).unwrap();
    assert_eq!(copy.steps(run.id).unwrap().len(), 51);
    let copied = copy.run(run.id).unwrap().unwrap();
    assert_eq!((copied.status, copied.config), (RunStatus::Running, config.clone()));
    // Reopening folds the log into sled and empties it.
    drop((copy, recorder, store));
    let reopened = TraceStore::open(&path).unwrap();
    assert_eq!(reopened.steps(run.id).unwrap().len(), 51);
    assert_eq!(reopened.run(run.id).unwrap().unwrap().config, config);
    assert_eq!(std::fs::metadata(path.join(wal::FILE)).unwrap().len(), 0);
}

#[tokio::test]
async fn a_config_is_stored_once_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir.path()).unwrap();
    let config = serde_json::json!({"model": {"name": "m"}, "prompt": "p".repeat(3000)});
    let other = serde_json::json!({"model": {"name": "n"}});
    let mut ids = Vec::new();
    for i in 0..20 {
        let c = if i % 2 == 0 { &config } else { &other };
        let run = store.create_run("ask", serde_json::json!(i), c.clone(), None).await.unwrap();
        assert_eq!(&run.config, c, "create_run hands back the whole config");
        store.finish_run(run.id, RunStatus::Completed, Some(serde_json::json!(i)), None).await.unwrap();
        ids.push(run.id);
    }
    let configs = store.db.open_tree("configs").unwrap();
    assert_eq!(configs.len(), 2, "two distinct configs, each stored once");
    // On disk a record names its config; read, it holds it whole.
    let raw = store.runs.get(ids[0].as_bytes()).unwrap().unwrap();
    assert!(raw.len() < 400, "{} bytes: {}", raw.len(), String::from_utf8_lossy(&raw));
    assert!(String::from_utf8_lossy(&raw).contains("\"$ref\":\"sha256:"));
    for (i, id) in ids.iter().enumerate() {
        let run = store.run(*id).unwrap().unwrap();
        assert_eq!(run.config, if i % 2 == 0 { config.clone() } else { other.clone() });
        assert_eq!((run.status, run.output), (RunStatus::Completed, Some(serde_json::json!(i))));
    }
    let listed = store.list_runs().unwrap();
    assert_eq!(listed.iter().filter(|r| r.config == config).count(), 10);
    // Across a reopen too (the caches start empty).
    drop((configs, store));
    let store = TraceStore::open(dir.path()).unwrap();
    assert_eq!(store.run(ids[1]).unwrap().unwrap().config, other);
    store.create_run("ask", serde_json::json!(20), config.clone(), None).await.unwrap();
    assert_eq!(store.db.open_tree("configs").unwrap().len(), 2);
}

#[tokio::test]
async fn records_with_their_config_inline_still_read_and_finish() {
    // Schema 2 stored the config inside the run record.
    let store = TraceStore::temporary().unwrap();
    let config = serde_json::json!({"strategy": "single"});
    let old = RunRecord {
        schema: 2,
        seq: 0,
        id: RunId::new(),
        kind: "ask".into(),
        input: serde_json::json!({"question": "q"}),
        config: config.clone(),
        parent: None,
        group: None,
        started_at: Utc::now(),
        ended_at: None,
        status: RunStatus::Running,
        error: None,
        output: None,
    };
    store.put(&store.runs, old.id.as_bytes(), &old).unwrap();
    assert_eq!(store.run(old.id).unwrap().unwrap(), old);
    store.finish_run(old.id, RunStatus::Completed, None, None).await.unwrap();
    let finished = store.run(old.id).unwrap().unwrap();
    assert_eq!((finished.status, finished.config), (RunStatus::Completed, config));
}

#[tokio::test]
async fn a_run_whose_config_is_missing_is_unreadable_alone() {
    use sha2::Digest as _;
    let store = TraceStore::temporary().unwrap();
    let lost = store.create_run("ask", serde_json::json!(1), serde_json::json!({"a": 1}), None).await.unwrap();
    let kept = store.create_run("ask", serde_json::json!(2), serde_json::json!({"b": 2}), None).await.unwrap();
    let configs = store.db.open_tree("configs").unwrap();
    let hash: [u8; 32] = sha2::Sha256::digest(br#"{"a":1}"#).into();
    assert!(configs.remove(hash).unwrap().is_some());
    let err = store.run(lost.id).unwrap_err();
    assert!(err.to_string().contains("config is not in the store"), "{err}");
    let (good, bad) = store.readable_runs().unwrap();
    assert_eq!((good.len(), good[0].id, bad.len()), (1, kept.id, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir.path()).unwrap();
    let run = store.create_run("t", serde_json::json!({}), serde_json::json!({}), None).await.unwrap();
    let before = store.flush_count();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let store = store.clone();
        tasks.spawn(async move {
            let step = crate::trace::StepRecord {
                schema: SCHEMA_VERSION,
                run_id: run.id,
                index: i,
                agent: "a".into(),
                started_at: Utc::now(),
                latency_ms: 0,
                payload: tool_call(i),
                error: None,
            };
            store.append_step(&step).await.unwrap();
            store.sync_steps().await.unwrap();
        });
    }
    while tasks.join_next().await.is_some() {}
    // How many flushes they shared depends on scheduling; the bench reports it.
    let flushes = store.flush_count() - before;
    assert!((1..=200).contains(&flushes), "{flushes}");
    // Nothing appended since: nothing to sync.
    store.sync_steps().await.unwrap();
    assert_eq!(store.flush_count() - before, flushes);
    let steps = store.steps(run.id).unwrap();
    assert_eq!(steps.iter().map(|s| s.index).collect::<Vec<_>>(), (0..200).collect::<Vec<_>>());
}

/// A crash copy of the store in `from`: its directory as it is now (sled's files
/// hold what sled wrote; the log holds every record since the last checkpoint).
fn crash_copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    copy_dir(from, to, &[]).unwrap();
}

#[tokio::test]
async fn a_damaged_or_cut_log_never_moves_a_run_backwards() {
    // Regression (issue 28.1): replaying a stale prefix of the log overwrote runs sled
    // already held as `completed` with their earlier `running` records.
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let store = TraceStore::open(&live).unwrap();
    let mut ids = Vec::new();
    for i in 0..60 {
        let run = store.create_run("ask", serde_json::json!(i), serde_json::json!({"c": i % 3}), None).await.unwrap();
        let recorder = crate::trace::RunRecorder::new(store.clone(), run.id, 0);
        recorder
            .record(recorder.reserve(), "tool", (Utc::now(), std::time::Instant::now()), tool_call(i), None)
            .await
            .unwrap();
        store.finish_run(run.id, RunStatus::Completed, Some(serde_json::json!(i)), None).await.unwrap();
        ids.push(run.id);
    }
    // sled's files now hold every final record; the log still holds both versions.
    store.db.flush().unwrap();
    let log_len = std::fs::metadata(live.join(wal::FILE)).unwrap().len() as usize;
    assert!(log_len > 10_000, "{log_len}");
    let completed = |path: &Path| {
        let store = TraceStore::open(path).unwrap();
        let n = ids.iter().filter(|id| store.run(**id).unwrap().unwrap().status == RunStatus::Completed).count();
        (n, store.log_recovery().cloned())
    };
    type Damage = fn(&mut Vec<u8>);
    let variants: [(&str, Damage); 4] = [
        ("intact", |_| {}),
        ("one bit flipped at 10%", |log| {
            let at = log.len() / 10;
            log[at] ^= 0x08;
        }),
        ("cut to 50%", |log| log.truncate(log.len() / 2)),
        ("emptied", |log| log.clear()),
    ];
    for (name, damage) in variants {
        let copy = dir.path().join(name.replace(' ', "_").replace('%', ""));
        crash_copy(&live, &copy);
        let mut log = std::fs::read(copy.join(wal::FILE)).unwrap();
        damage(&mut log);
        std::fs::write(copy.join(wal::FILE), &log).unwrap();
        let (n, report) = completed(&copy);
        assert_eq!(n, 60, "{name}: every completed run stays completed");
        let kept: Vec<_> = std::fs::read_dir(&copy)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .collect();
        if name.starts_with("one bit") {
            let report = report.unwrap_or_else(|| panic!("{name}: damage reported"));
            assert_eq!(report.damaged_regions, 1, "{report:?}");
            assert!(report.recovered_after_damage > 0 && report.stale > 0, "{report:?}");
            assert_eq!(kept.len(), 1, "the damaged log is kept aside");
            assert_eq!(std::fs::read(kept[0].path()).unwrap(), log, "as it was");
            assert!(report.to_string().contains("kept at"), "{report}");
        } else {
            assert!(report.is_none() && kept.is_empty(), "{name}: a cut log is a torn tail, not damage");
        }
    }
}

#[tokio::test]
async fn a_resumed_run_reads_back_as_reopened_not_as_its_earlier_end() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let store = TraceStore::open(&live).unwrap();
    let run = store.create_run("eval", serde_json::json!(1), serde_json::json!({}), None).await.unwrap();
    store.finish_run(run.id, RunStatus::Completed, None, None).await.unwrap();
    store.reopen_run(run.id).await.unwrap();
    store.db.flush().unwrap();
    let stored = store.run(run.id).unwrap().unwrap();
    assert_eq!((stored.status, stored.seq), (RunStatus::Running, 3));
    crash_copy(&live, &dir.path().join("copy"));
    let copy = TraceStore::open(dir.path().join("copy")).unwrap();
    let after = copy.run(run.id).unwrap().unwrap();
    assert_eq!((after.status, after.seq), (RunStatus::Incomplete, 4), "reopened, then its process died");
}

#[tokio::test]
async fn records_that_do_not_decode_are_skipped_and_the_rest_replayed() {
    // Regression (issue 28.1): a record whose checksum held but whose JSON did not
    // decode, or a config record under 32 bytes, made the whole store refuse to open.
    let dir = tempfile::tempdir().unwrap();
    let good = StepRecord {
        schema: SCHEMA_VERSION,
        run_id: RunId::new(),
        index: 0,
        agent: "a".into(),
        started_at: Utc::now(),
        latency_ms: 0,
        payload: tool_call(1),
        error: None,
    };
    {
        let (log, _) = Wal::open(dir.path()).unwrap();
        log.append(Kind::Run, b"{\"schema\":4,\"not\":\"a run\"}").unwrap();
        log.append(Kind::Config, b"short").unwrap();
        log.append(Kind::Step, &serde_json::to_vec(&good).unwrap()).unwrap();
        log.sync().unwrap();
    }
    let store = TraceStore::open(dir.path()).unwrap();
    assert_eq!(store.steps(good.run_id).unwrap(), vec![good.clone()]);
    let report = store.log_recovery().unwrap();
    assert_eq!((report.undecodable, report.replayed, report.damaged_regions), (2, 1, 0), "{report:?}");
    assert!(report.first_undecodable.as_deref().unwrap_or("").contains("a run record"), "{report:?}");
    assert!(report.kept_at.as_ref().is_some_and(|p| p.exists()));
}

#[tokio::test]
async fn a_store_sled_opens_short_is_refused_and_salvaged_whole() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let mut ids = Vec::new();
    {
        let store = TraceStore::open(&live).unwrap();
        for i in 0..30 {
            let config = serde_json::json!({"model": format!("m{}", i % 4), "prompt": "p".repeat(300)});
            let run = store.create_run("ask", serde_json::json!({"q": i}), config, None).await.unwrap();
            let recorder = crate::trace::RunRecorder::new(store.clone(), run.id, 0);
            for s in 0..3 {
                recorder
                    .record(recorder.reserve(), "tool", (Utc::now(), std::time::Instant::now()), tool_call(s), None)
                    .await
                    .unwrap();
            }
            store.finish_run(run.id, RunStatus::Completed, Some(serde_json::json!(i)), None).await.unwrap();
            ids.push(run.id);
        }
        // One more, only in the log: a crash before sled wrote it.
        store.checkpoint().unwrap();
        let late =
            store.create_run("ask", serde_json::json!({"q": "late"}), serde_json::json!({}), None).await.unwrap();
        store.finish_run(late.id, RunStatus::Completed, None, None).await.unwrap();
        ids.push(late.id);
        crash_copy(&live, &dir.path().join("crashed"));
    }
    let crashed = dir.path().join("crashed");
    // sled's file scrambled at half its length. sled 0.34 opens such a file by
    // dropping everything after the damage (and may panic on others, issue 28.2);
    // the manifest of the last checkpoint says runs are missing, so the store is
    // refused as damaged, with no panic and no write of ours.
    let db = crashed.join("db");
    let mut bytes = std::fs::read(&db).unwrap();
    let at = bytes.len() / 2;
    for b in &mut bytes[at..at + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    let opened = dir.path().join("opened");
    crash_copy(&crashed, &opened);
    match TraceStore::open(&opened) {
        Err(TraceError::Damaged { detail, .. }) => {
            assert!(detail.contains("were stored by its last checkpoint"), "{detail}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a store missing runs opened as if whole"),
    }
    // A salvage of the files as they were reads every run sled had written.
    let scanned = super::salvage::scan_files(&crashed).unwrap();
    assert_eq!(scanned.runs.len(), 30, "the scan finds every run sled wrote");
    let before = std::fs::read(&db).unwrap();
    let into = dir.path().join("salvaged");
    let report = TraceStore::salvage(&crashed, &into).unwrap();
    assert!(std::fs::read(&db).unwrap() == before, "the damaged store is only read");
    let store = TraceStore::open(&into).unwrap();
    let (runs, bad) = store.readable_runs().unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    let found: std::collections::HashSet<RunId> = runs.iter().map(|r| r.id).collect();
    // Whatever sled had written before the cut, and everything the log held.
    assert_eq!(found, ids.iter().copied().collect(), "{report:?}");
    for run in &runs {
        assert_eq!(run.status, RunStatus::Completed);
        assert_eq!(store.steps(run.id).unwrap().len(), if run.input["q"] == "late" { 0 } else { 3 });
    }
    assert!(TraceStore::salvage(&crashed, &into).is_err(), "never over an existing directory");
    // After sled opened the damaged files, what it dropped is gone from them; a
    // salvage still gets what sled kept and the whole log.
    let late = TraceStore::salvage(&opened, &dir.path().join("late")).unwrap();
    let store = TraceStore::open(dir.path().join("late")).unwrap();
    let (runs, _) = store.readable_runs().unwrap();
    assert!(runs.iter().any(|r| r.id == *ids.last().unwrap()), "{late:?}");
    assert!(runs.len() < 31, "sled's open dropped runs: {late:?}");
}

#[test]
fn a_panic_inside_is_an_error_with_its_message() {
    let caught = recovery::catch_quietly(|| -> u32 { panic!("tried to serialize Uninitialized") });
    assert_eq!(caught, Err("tried to serialize Uninitialized".to_string()));
    assert_eq!(recovery::catch_quietly(|| 7), Ok(7));
    // Outside the call, panics are reported as before (the hook defers to the old one).
    assert!(std::panic::catch_unwind(|| panic!("ordinary")).is_err());
}

#[tokio::test]
async fn a_listing_keeps_the_runs_its_filter_names() {
    let store = TraceStore::temporary().unwrap();
    let ask = store.create_run("ask", serde_json::json!(1), serde_json::json!({}), None).await.unwrap();
    let verify = store.create_run("verify", serde_json::json!(2), serde_json::json!({}), None).await.unwrap();
    let ids = |filter: ListingFilter| -> Vec<RunId> {
        store.listing(false).unwrap().filtered(&filter).runs.iter().map(|r| r.run.id).collect()
    };
    assert_eq!(ids(ListingFilter::default()), [ask.id, verify.id]);
    assert_eq!(ids(ListingFilter { kind: Some("verify".into()), ..Default::default() }), [verify.id]);
    assert_eq!(ids(ListingFilter { since: Some(verify.started_at), ..Default::default() }), [verify.id]);
    assert!(ids(ListingFilter { until: Some(ask.started_at), ..Default::default() }).is_empty());
    let midnight = parse_time("2026-12-01").unwrap();
    assert_eq!(parse_time("2026-12-01T02:00:00+02:00"), Some(midnight));
    assert_eq!(midnight.to_rfc3339(), "2026-12-01T00:00:00+00:00");
    assert_eq!(parse_time("last week"), None);
}
