//! Reading runs through a running `recheck serve` (which holds the store: sled allows
//! one process): the list from `/recheck/v1/runs`, runs with their steps from
//! `/recheck/v1/export` (JSONL, imported into a temporary store so every reader reads
//! them exactly as it reads the store). `recheck traces` and the Python package's
//! `Store` both read through it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::trace::{Listing, TraceStore};

use super::Home;

/// What a running `recheck serve` writes to `serve.json` in its home.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServeFile {
    /// Base URL, e.g. `http://127.0.0.1:8787`.
    pub url: String,
    /// The server's process id.
    pub pid: u32,
    /// The environment variable holding its key, if it has one (never the key).
    pub api_key_env: Option<String>,
}

/// The file a running server is announced in.
pub fn serve_file(home: &Home) -> PathBuf {
    home.root().join("serve.json")
}

/// A server that cannot be read through, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RemoteError(pub String);

type Result<T> = std::result::Result<T, RemoteError>;

macro_rules! fail {
    ($($arg:tt)*) => { RemoteError(format!($($arg)*)) };
}

/// A server to read through.
#[derive(Debug, Clone)]
pub struct Remote {
    url: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl Remote {
    /// The server at `url`, with the key in environment variable `key_env`.
    pub fn new(url: &str, key_env: Option<&str>) -> Result<Self> {
        let url = url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(fail!("the server must be an http:// or https:// URL, got {url:?}"));
        }
        let key = match key_env {
            None => None,
            Some(name) => match std::env::var(name) {
                Ok(k) => Some(k),
                Err(_) => return Err(fail!("the environment variable {name} (the server's key) is not set")),
            },
        };
        // A stopped server, or a socket that accepts and never answers, must not hang
        // a read: connecting and each read are bounded.
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .read_timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| fail!("cannot make an HTTP client: {e}"))?;
        Ok(Self { url, key, http })
    }

    /// The `recheck serve` running on `home`'s store, if one is: its `serve.json`
    /// names a live process, the store is held, and the server answers its health
    /// check within seconds. A stale file (a PID reused after a crash), a store no one
    /// holds or a server that does not answer is passed over: the store is read instead
    /// (itself, or a snapshot of it), and a server that did not answer is said to `say`.
    pub async fn running(home: &Home, say: &(dyn Fn(&str) + Sync)) -> Result<Option<Self>> {
        let Ok(text) = std::fs::read(serve_file(home)) else { return Ok(None) };
        let Ok(file) = serde_json::from_slice::<ServeFile>(&text) else { return Ok(None) };
        if !alive(file.pid) || !TraceStore::is_held(&home.traces_dir()) {
            return Ok(None);
        }
        let remote = Self::new(&file.url, file.api_key_env.as_deref())?;
        if let Err(e) = remote.ping().await {
            say(&format!(
                "(recheck serve at {} did not answer: {e}; reading a snapshot of the store instead)",
                remote.url
            ));
            return Ok(None);
        }
        say(&format!("(the store is held by `recheck serve` at {}: reading through it)", remote.url));
        Ok(Some(remote))
    }

    /// Whether the server answers `/health` as recheck does, within 3 seconds.
    async fn ping(&self) -> Result<()> {
        let answer = self.http.get(format!("{}/health", self.url)).timeout(std::time::Duration::from_secs(3)).send();
        let body = answer.await.map_err(|e| fail!("{e}"))?.bytes().await.map_err(|e| fail!("{e}"))?;
        let body: serde_json::Value = serde_json::from_slice(&body).map_err(|e| fail!("{e}"))?;
        if body.get("status").and_then(|s| s.as_str()).is_none() {
            return Err(fail!("it is not a recheck server"));
        }
        Ok(())
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>> {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(k) = &self.key {
            request = request.bearer_auth(k);
        }
        let response = request.send().await.map_err(|e| fail!("cannot reach recheck serve at {}: {e}", self.url))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| fail!("reading from {}: {e}", self.url))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(fail!("recheck serve at {} answered {status}: {message}", self.url));
        }
        Ok(body.to_vec())
    }

    /// The runs, as `traces list` shows them.
    pub async fn list(&self, items: bool) -> Result<Listing> {
        let body = self.get(if items { "/recheck/v1/runs?items=true" } else { "/recheck/v1/runs" }).await?;
        serde_json::from_slice(&body)
            .map_err(|e| fail!("recheck serve at {} sent a list that is not one: {e}", self.url))
    }

    /// A temporary store holding runs `ids` (all runs when empty) with their steps.
    pub async fn fetch(&self, ids: &[String]) -> Result<TraceStore> {
        let query: Vec<String> = ids.iter().map(|id| format!("run={id}")).collect();
        let body = self.get(&format!("/recheck/v1/export?{}", query.join("&"))).await?;
        let copy = |e: &dyn std::fmt::Display| fail!("cannot copy the runs of recheck serve at {}: {e}", self.url);
        let dir = tempfile::tempdir().map_err(|e| copy(&e))?;
        let file = dir.path().join("runs.jsonl");
        std::fs::write(&file, &body).map_err(|e| copy(&e))?;
        let store = TraceStore::temporary().map_err(|e| copy(&e))?;
        store.import_jsonl(&file).map_err(|e| copy(&e))?;
        Ok(store)
    }
}

/// Whether process `pid` exists.
fn alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        // Signal 0 checks existence; EPERM means it exists but is not ours.
        // SAFETY: kill with signal 0 sends nothing; it only reads the process table.
        unsafe { libc::kill(pid, 0) == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}
