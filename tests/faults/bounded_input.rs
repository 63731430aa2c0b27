//! Files a user names that never end (`/dev/zero`), block on open (a FIFO) or are
//! devices, and numbers too large to allocate: each is refused at once, naming the
//! input, with nothing stored (issue 28.4 and 28.5).

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

/// `recheck args` in `home`, with `stdin`, killed (and the test failed) past 60 s.
fn bounded(home: &Path, args: &[&str], stdin: Stdio) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_recheck"))
        .args(args)
        .env("RECHECK_HOME", home)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("recheck {args:?} was still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn files_that_never_end_or_block_are_refused_naming_them() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pipe = dir.path().join("pipe");
    fifo(&pipe);
    // A run to fork, and directories whose files link to a device.
    let out = super::recheck(home.path(), &["ask", "What is 2 + 3?", "--model", "sim:seed=1", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = run["trace_id"].as_str().unwrap().to_string();
    let links = dir.path().join("links");
    std::fs::create_dir_all(&links).unwrap();
    std::os::unix::fs::symlink("/dev/zero", links.join("critic.j2")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", links.join("critic.toml")).unwrap();
    let pipe_s = pipe.to_str().unwrap();
    let links_s = links.to_str().unwrap();
    // In the scratch folder, not the working directory (an `idx` once got committed).
    let idx = dir.path().join("idx");
    let idx_s = idx.to_str().unwrap();
    let prompt_change = "prompt.critic=/dev/zero".to_string();
    let agent_change = "agent.critic=/dev/zero".to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["ask", "--file", "/dev/zero", "--model", "sim:seed=1"], "/dev/zero"),
        (vec!["ask", "--file", pipe_s, "--model", "sim:seed=1"], "FIFO"),
        (vec!["ask", "q?", "--model", "sim:seed=1", "--prompts-dir", links_s], "critic.j2"),
        (vec!["ask", "q?", "--model", "sim:seed=1", "--agents-dir", links_s], "critic.toml"),
        (vec!["eval", "run", "/dev/zero", "--model", "sim:seed=1"], "/dev/zero"),
        (vec!["index", "--index", idx_s, "/dev/zero"], "/dev/zero"),
        (vec!["traces", "import", "/dev/zero"], "/dev/zero"),
        (vec!["traces", "import", pipe_s], "FIFO"),
        (vec!["replay", &run, "--from-step", "0", "--change", &prompt_change], "/dev/zero"),
        (vec!["replay", &run, "--from-step", "0", "--change", &agent_change], "/dev/zero"),
    ];
    let runs_before = super::recheck(home.path(), &["traces", "list", "--json"]).stdout;
    for (args, names) in cases {
        let out = bounded(home.path(), &args, Stdio::null());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(names) && err.contains("not a regular file"), "{args:?}: {err}");
    }
    // Standard input is read up to the question's limit, then refused.
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let out = bounded(home.path(), &["ask", "-", "--model", "sim:seed=1"], Stdio::from(zero));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("standard input") && err.contains("limit"), "{err}");
    let runs_after = super::recheck(home.path(), &["traces", "list", "--json"]).stdout;
    assert_eq!(runs_before, runs_after, "nothing stored");
}

#[test]
fn concurrency_past_what_a_semaphore_holds_is_a_usage_error() {
    // Regression (issue 28.5): these panicked inside tokio.
    let home = tempfile::tempdir().unwrap();
    let spec = super::store_damage::multiplication_spec(&home.path().join("spec"), 2);
    let spec = spec.to_str().unwrap();
    for args in [
        vec!["eval", "run", spec, "--model", "sim:seed=1", "--concurrency", "2305843009213693952"],
        vec!["replay", "--runs", "kind=ask", "--change", "judge=lexical", "--concurrency", "18446744073709551615"],
        vec!["serve", "--model", "sim:seed=1", "--max-in-flight", "18446744073709551615"],
        vec!["eval", "run", spec, "--model", "sim:seed=1", "--concurrency", "0"],
    ] {
        let out = bounded(home.path(), &args, Stdio::null());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("--concurrency") || err.contains("--max-in-flight"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
