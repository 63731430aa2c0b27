//! A streamed pass-through: the upstream's events relayed to the client as they come,
//! inside the server's limits, and stored when the stream ends.
//!
//! The stream holds the request's in-flight permit for as long as it runs (so
//! `--max-in-flight` bounds streams too, and shutdown waits for them), stops at
//! `--max-reply-bytes` and at the request deadline, and stores its run once it ends,
//! saying how: finished, cut by the client, by the deadline, by the reply cap, or
//! broken off by the upstream. At most `--max-reply-bytes` of it is stored.

use std::sync::Arc;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;

use super::Server;
use crate::trace::{RunId, RunRecorder, RunStatus};

/// How a relayed stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Finished,
    Client,
    Deadline,
    ReplyCap,
    Upstream,
}

impl Ending {
    fn word(self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::Client => "cut by the client",
            Self::Deadline => "cut by the deadline",
            Self::ReplyCap => "cut at --max-reply-bytes",
            Self::Upstream => "broken off by the upstream",
        }
    }
}

/// What a relay keeps while it runs.
struct Relay {
    server: Arc<Server>,
    run: RunId,
    recorder: RunRecorder,
    status: u16,
    /// The request's in-flight permit, released once the run is stored.
    permit: Option<OwnedSemaphorePermit>,
    /// What was relayed, up to the cap, for the store.
    kept: Vec<u8>,
    relayed: u64,
    done: bool,
}

impl Relay {
    /// Store the run as it ended and release the permit.
    fn end(&mut self, ending: Ending, detail: Option<String>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let data = json!({
            "status": self.status,
            "streamed": true,
            "ended": ending.word(),
            "bytes": self.relayed,
            "body": String::from_utf8_lossy(&self.kept),
        });
        let (status, error) = match ending {
            Ending::Finished => (RunStatus::Completed, None),
            other => (RunStatus::Failed, Some(detail.unwrap_or_else(|| format!("the stream was {}", other.word())))),
        };
        let (server, run, recorder, permit) =
            (self.server.clone(), self.run, self.recorder.clone(), self.permit.take());
        self.kept = Vec::new();
        let store_it = async move {
            let stored = async {
                recorder.event("proxy", "passthrough", data).await?;
                server.store.finish_run(run, status, None, error).await
            };
            if let Err(e) = stored.await {
                tracing::warn!("storing streamed pass-through run {run}: {e}");
            }
            server.metrics.in_flight(-1);
            drop(permit);
        };
        // Ending from `Drop` (the client went away): the store is written on a task.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn(store_it)),
            Err(_) => tracing::warn!("run {run}: no runtime to store the streamed pass-through on"),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.end(Ending::Client, None);
    }
}

/// The client's body for `upstream`'s event stream, within the server's limits.
pub(super) fn relay(
    server: &Arc<Server>,
    run: RunId,
    recorder: RunRecorder,
    status: u16,
    permit: OwnedSemaphorePermit,
    upstream: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    max_bytes: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    server.metrics.in_flight(1);
    let relay = Relay {
        server: server.clone(),
        run,
        recorder,
        status,
        permit: Some(permit),
        kept: Vec::new(),
        relayed: 0,
        done: false,
    };
    let deadline = tokio::time::Instant::now() + server.config.deadline;
    let upstream = Box::pin(upstream);
    futures_util::stream::unfold((relay, upstream), move |(mut relay, mut upstream)| async move {
        if relay.done {
            return None;
        }
        let next = tokio::select! {
            next = upstream.next() => next,
            () = tokio::time::sleep_until(deadline) => {
                relay.end(Ending::Deadline, None);
                return Some((Err(std::io::Error::other("the request deadline passed")), (relay, upstream)));
            }
        };
        match next {
            None => {
                relay.end(Ending::Finished, None);
                None
            }
            Some(Err(e)) => {
                relay.end(Ending::Upstream, Some(format!("the upstream's stream broke off: {e}")));
                Some((Err(std::io::Error::other(e)), (relay, upstream)))
            }
            Some(Ok(chunk)) => {
                relay.relayed += chunk.len() as u64;
                if relay.relayed > max_bytes as u64 {
                    let why = format!("the upstream's stream passed --max-reply-bytes ({max_bytes} bytes)");
                    relay.end(Ending::ReplyCap, Some(why.clone()));
                    return Some((Err(std::io::Error::other(why)), (relay, upstream)));
                }
                relay.kept.extend_from_slice(&chunk);
                Some((Ok(chunk), (relay, upstream)))
            }
        }
    })
}
