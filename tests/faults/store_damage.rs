//! The trace store under a failing machine: a process killed mid-run, then its
//! write-ahead log or sled's own file damaged. Acknowledged data never moves
//! backwards, damage is said and kept, and nothing panics.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::recheck;

/// A friction spec over `n` 5-digit multiplications of our own, in `dir`.
pub fn multiplication_spec(dir: &Path, n: usize) -> PathBuf {
    let mut items = String::new();
    let mut x: u64 = 12_345;
    for _ in 0..n {
        // A fixed linear congruential sequence: the same items every run.
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let (a, b) = (10_000 + (x >> 33) % 90_000, 10_000 + (x >> 13) % 90_000);
        items.push_str(&format!("{{\"question\": \"What is {a} * {b}?\", \"answer\": \"{}\"}}\n", a * b));
    }
    super::support::friction_spec(dir, &items, 3)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The runs `traces list --items --json` shows in `home`, with its stderr and exit code.
fn listed(home: &Path) -> (Vec<Value>, String, Option<i32>) {
    let out = recheck(home, &["traces", "list", "--items", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let runs = serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v["runs"].as_array().cloned())
        .unwrap_or_default();
    (runs, err, out.status.code())
}

fn completed(runs: &[Value]) -> usize {
    runs.iter().filter(|r| r["run"]["status"] == "completed").count()
}

#[test]
fn a_killed_run_with_a_damaged_or_cut_log_loses_no_completed_run() {
    // Regression (issue 28.1): one flipped bit at 10% of the log took completed runs
    // 2,230 -> 2,162, a log cut to half 2,154, below the 2,203 of no log at all.
    let dir = tempfile::tempdir().unwrap();
    let spec = multiplication_spec(&dir.path().join("spec"), 40_000);
    let home = dir.path().join("home");
    let mut child = Command::new(env!("CARGO_BIN_EXE_recheck"))
        .args(["eval", "run", spec.to_str().unwrap(), "--model", "sim:seed=1", "--concurrency", "64"])
        .env("RECHECK_HOME", &home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = home.join("traces/steps.wal");
    let started = Instant::now();
    while std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) < 8 << 20 {
        assert!(started.elapsed() < Duration::from_secs(120), "the run wrote no 8 MB of log in 2 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let variant = |name: &str, damage: &dyn Fn(&mut Vec<u8>)| {
        let copy = dir.path().join(name);
        copy_dir(&home.join("traces"), &copy.join("traces"));
        let wal = copy.join("traces/steps.wal");
        let mut bytes = std::fs::read(&wal).unwrap();
        damage(&mut bytes);
        std::fs::write(&wal, &bytes).unwrap();
        let (runs, err, code) = listed(&copy);
        assert_eq!(code, Some(0), "{name}: {err}");
        let kept = std::fs::read_dir(copy.join("traces"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("steps.wal.corrupt-"))
            .count();
        (completed(&runs), err, kept)
    };
    let (intact, _, _) = variant("intact", &|_| {});
    let (flipped, flipped_err, kept) = variant("flipped", &|b| {
        let at = b.len() / 10;
        b[at] ^= 0x10;
    });
    let (cut, _, _) = variant("cut", &|b| b.truncate(b.len() / 2));
    let (emptied, _, _) = variant("emptied", &|b| b.clear());
    assert!(intact > 20, "{intact} runs completed before the kill");
    // One record is lost with the damage at most: one run's last write.
    assert!(flipped + 1 >= intact, "flipped: {flipped} completed of {intact}");
    assert!(flipped_err.contains("damaged") && flipped_err.contains("kept at"), "{flipped_err}");
    assert_eq!(kept, 1, "the damaged log is kept aside");
    // A prefix of the log can only add to what sled holds.
    assert!(emptied <= cut && cut <= intact, "no log {emptied}, half {cut}, whole {intact}");
}

#[test]
fn a_damaged_sled_file_is_an_error_not_a_panic_and_salvage_rebuilds_a_store() {
    // Regression (issue 28.2): a scrambled or cut `traces/db` made every command exit
    // 101 with sled's panic.
    let dir = tempfile::tempdir().unwrap();
    let spec = multiplication_spec(&dir.path().join("spec"), 200);
    let home = dir.path().join("home");
    let out = recheck(&home, &["eval", "run", spec.to_str().unwrap(), "--model", "sim:seed=2", "--concurrency", "8"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Once more, so the log is folded into sled and the manifest written.
    let (runs, _, _) = listed(&home);
    let total = runs.len();
    assert!(total > 200, "{total}");
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 4] = [
        ("xor at 1%", |b| {
            let at = b.len() / 100;
            b[at..at + 16].iter_mut().for_each(|x| *x ^= 0x5a);
        }),
        ("xor at 50%", |b| {
            let at = b.len() / 2;
            b[at..at + 16].iter_mut().for_each(|x| *x ^= 0x5a);
        }),
        ("xor at 95%", |b| {
            let at = b.len() * 95 / 100;
            b[at..at + 16].iter_mut().for_each(|x| *x ^= 0x5a);
        }),
        ("cut to half", |b| b.truncate(b.len() / 2)),
    ];
    for (name, damage) in damages {
        let copy = dir.path().join(name.replace([' ', '%'], "_"));
        copy_dir(&home.join("traces"), &copy.join("traces"));
        let db = copy.join("traces/db");
        let mut bytes = std::fs::read(&db).unwrap();
        damage(&mut bytes);
        std::fs::write(&db, &bytes).unwrap();
        for args in [&["traces", "list", "--json"][..], &["ask", "What is 2 + 2?", "--model", "sim:seed=1"][..]] {
            let out = recheck(&copy, args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("panicked") && out.status.code() != Some(101), "{name}, {args:?}: {err}");
            if !out.status.success() {
                assert_eq!(out.status.code(), Some(1), "{name}: {err}");
                assert!(err.contains("is damaged") && err.contains("recheck traces salvage"), "{name}: {err}");
            }
        }
        let out = recheck(&copy, &["traces", "salvage"]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(said.contains("the damaged store is kept at"), "{said}");
        let (runs, err, code) = listed(&copy);
        assert_eq!(code, Some(0), "{name}: after salvage: {err}");
        assert!(!runs.is_empty(), "{name}: {said}");
        let kept = std::fs::read_dir(&copy)
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("traces.damaged-") && e.path().join("db").is_file());
        assert!(kept, "{name}: the damaged store is kept beside the new one");
    }
}
