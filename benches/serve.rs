//! A load client for OpenAI-compatible chat-completion servers: `recheck serve`, the
//! LiteLLM proxy, or the upstream alone, measured the same way.
//!
//! `cargo bench --bench serve -- --url http://127.0.0.1:PORT/v1 --n 500 --concurrency 1
//!   [--duration SECS] [--key KEY] [--model NAME] [--pid PID] [--label TEXT]`
//!
//! Sends the same question N times (or for SECS seconds) from `--concurrency` clients
//! and prints one JSON object: requests, errors, requests/s, p50/p99 latency in ms, and
//! with `--pid` the server's CPU ms per request and peak RSS (its whole process tree,
//! from /proc). `scripts/bench-serve.sh` runs the comparison. Also writes
//! `target/bench/serve.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::json;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// CPU milliseconds (user + system) of `pid` and all its descendants, from /proc.
fn tree_cpu_ms(pid: u32) -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    tree(pid).iter().filter_map(|p| stat(*p)).map(|f| (f.0 + f.1) as f64 * 1000.0 / tick).sum()
}

/// Peak RSS in MB of `pid` and its descendants (sum of each VmHWM).
fn tree_peak_rss_mb(pid: u32) -> f64 {
    tree(pid)
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .sum::<f64>()
        / 1024.0
}

/// (utime, stime, ppid) of a process.
fn stat(pid: u32) -> Option<(u64, u64, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?, f.get(1)?.parse().ok()?))
}

fn tree(root: u32) -> Vec<u32> {
    let all: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| Some((p, stat(p)?.2)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let Some(url) = arg("--url") else {
        eprintln!("serve bench: needs --url of a server (scripts/bench-serve.sh starts them); skipping");
        return;
    };
    let n: usize = arg("--n").map_or(500, |v| v.parse().expect("--n N"));
    let concurrency: usize = arg("--concurrency").map_or(1, |v| v.parse().expect("--concurrency N"));
    let duration = arg("--duration").map(|v| Duration::from_secs_f64(v.parse().expect("--duration SECS")));
    let pid: Option<u32> = arg("--pid").map(|v| v.parse().expect("--pid PID"));
    let model = arg("--model").unwrap_or_else(|| "bench".into());
    let key = arg("--key");
    let body = json!({"model": model, "max_tokens": 64,
        "messages": [{"role": "user", "content": "Is 7411 a prime number?"}]})
    .to_string();
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let endpoint = format!("{}/chat/completions", url.trim_end_matches('/'));

    // Warm up: connections, the server's caches.
    for _ in 0..5 {
        let mut r = client.post(&endpoint).header("content-type", "application/json").body(body.clone());
        if let Some(k) = &key {
            r = r.bearer_auth(k);
        }
        if let Ok(r) = r.send().await {
            let _ = r.bytes().await;
        }
    }
    let cpu_before = pid.map(tree_cpu_ms);
    let started = Instant::now();
    let issued = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, endpoint, body, key, issued) =
            (client.clone(), endpoint.clone(), body.clone(), key.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0usize);
            loop {
                match duration {
                    Some(d) if started.elapsed() >= d => break,
                    None if issued.fetch_add(1, Ordering::SeqCst) >= n => break,
                    _ => {}
                }
                let t = Instant::now();
                let mut r = client.post(&endpoint).header("content-type", "application/json").body(body.clone());
                if let Some(k) = &key {
                    r = r.bearer_auth(k);
                }
                let ok = match r.send().await {
                    Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let wall = started.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let done = latencies.len();
    let server_cpu = match (pid, cpu_before) {
        (Some(p), Some(before)) => Some((tree_cpu_ms(p) - before) / done.max(1) as f64),
        _ => None,
    };
    let result = json!({
        "label": arg("--label").unwrap_or_default(),
        "concurrency": concurrency,
        "requests": done,
        "errors": errors,
        "requests_per_s": done as f64 / wall,
        "p50_ms": percentile(&latencies, 0.5),
        "p99_ms": percentile(&latencies, 0.99),
        "server_cpu_ms_per_request": server_cpu,
        "server_peak_rss_mb": pid.map(tree_peak_rss_mb),
        "client_peak_rss_mb": common::peak_rss_mb(),
    });
    println!("{result}");
    common::write_json("serve", &result);
}
