//! Sending stored runs to an OTLP/HTTP collector from a thread of its own, so no run
//! waits on the collector: runs are queued by id, read back from the store, mapped to
//! spans and sent in batches. A collector that is down costs bounded retries and a log
//! line; the store keeps every run, and `recheck traces export --otlp` sends it later.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{
    trace::{SpanData, SpanExporter as _},
    Resource,
};
use serde::Serialize;

use super::{run_spans, OtlpOptions, TelemetryError};
use crate::trace::{RunId, TraceStore};

/// Runs read and sent together at most.
const BATCH_RUNS: usize = 64;

/// What an exporter did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExportCounts {
    /// Runs the collector accepted.
    pub runs: u64,
    /// Their spans.
    pub spans: u64,
    /// Runs not delivered (the collector failed past its retries, or a run could not
    /// be read); they are still in the store.
    pub failed: u64,
    /// Runs not queued because the queue was full.
    pub dropped: u64,
    /// Runs queued and not yet sent or failed (when the exporter stopped waiting).
    pub pending: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    runs: AtomicU64,
    spans: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ExportCounts {
        let (runs, failed) = (self.runs.load(Ordering::SeqCst), self.failed.load(Ordering::SeqCst));
        ExportCounts {
            runs,
            spans: self.spans.load(Ordering::SeqCst),
            failed,
            dropped: self.dropped.load(Ordering::SeqCst),
            pending: self.queued.load(Ordering::SeqCst).saturating_sub(runs + failed),
        }
    }
}

enum Job {
    Run(RunId),
    /// Answered once every job queued before it is done.
    Flush(mpsc::Sender<()>),
    Stop,
}

/// An OTLP/HTTP (protobuf) exporter of stored runs, working on a thread of its own.
pub struct OtlpExporter {
    queue: SyncSender<Job>,
    counters: Arc<Counters>,
    worker: Option<JoinHandle<()>>,
    endpoint: String,
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter").field("endpoint", &self.endpoint).finish()
    }
}

impl OtlpExporter {
    /// An exporter of `store`'s runs to `options.endpoint`.
    pub fn start(store: &TraceStore, options: &OtlpOptions) -> Result<Self, TelemetryError> {
        let build = |reason: String| TelemetryError::Exporter { endpoint: options.endpoint.clone(), reason };
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(options.endpoint.clone())
            .with_timeout(options.timeout)
            .build()
            .map_err(|e| build(e.to_string()))?;
        // Phoenix files spans under the project this attribute names.
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name("recheck")
                .with_attribute(KeyValue::new("openinference.project.name", options.project.clone()))
                .build(),
        );
        let (queue, jobs) = mpsc::sync_channel(options.queue.max(1));
        let counters = Arc::new(Counters::default());
        let (store, content, c) = (store.clone(), options.content, counters.clone());
        let worker = std::thread::Builder::new()
            .name("recheck-otlp".into())
            .spawn(move || work(exporter, store, content, jobs, c))
            .map_err(|e| build(format!("cannot start the export thread: {e}")))?;
        Ok(Self { queue, counters, worker: Some(worker), endpoint: options.endpoint.clone() })
    }

    /// Queue run `id` for export; never waits. False (and counted as dropped) when
    /// the queue is full.
    pub fn send(&self, id: RunId) -> bool {
        queue(&self.queue, &self.counters, id)
    }

    /// Queue every run of the store that finishes from now on (live export). False
    /// when the store already tells another hook (one a store; see
    /// [`TraceStore::on_finish`]).
    pub fn watch(&self, store: &TraceStore) -> bool {
        let (tx, counters) = (self.queue.clone(), self.counters.clone());
        store.on_finish(move |id| {
            queue(&tx, &counters, id);
        })
    }

    /// Counts so far.
    pub fn counts(&self) -> ExportCounts {
        self.counters.snapshot()
    }

    /// Wait until every run queued so far is sent or has failed, at most `timeout`;
    /// false if it took longer.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = mpsc::channel();
        if self.queue.send(Job::Flush(done)).is_err() {
            return false;
        }
        !matches!(wait.recv_timeout(timeout), Err(RecvTimeoutError::Timeout))
    }

    /// Send what is queued (waiting at most `timeout`), stop the thread, and return
    /// the counts. Past `timeout` the thread is left to finish on its own.
    pub fn finish(mut self, timeout: Duration) -> ExportCounts {
        let flushed = self.flush(timeout);
        if !flushed {
            tracing::warn!(endpoint = %self.endpoint, "OTLP export still busy after {timeout:?}; the rest stays in the store");
        }
        if let Some(worker) = self.worker.take().filter(|_| flushed) {
            // Queued after whatever a live hook added since the flush.
            let _ = self.queue.send(Job::Stop);
            let _ = worker.join();
        }
        self.counters.snapshot()
    }
}

fn queue(tx: &SyncSender<Job>, counters: &Counters, id: RunId) -> bool {
    match tx.try_send(Job::Run(id)) {
        Ok(()) => {
            counters.queued.fetch_add(1, Ordering::SeqCst);
            true
        }
        Err(e) => {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            let why = match e {
                TrySendError::Full(_) => "the export queue is full",
                TrySendError::Disconnected(_) => "the exporter has finished",
            };
            tracing::warn!(run = %id, "not exported: {why}; the run stays in the store (traces export --otlp sends it)");
            false
        }
    }
}

/// The export thread: take a batch of runs, read them, send their spans.
fn work(
    exporter: opentelemetry_otlp::SpanExporter,
    store: TraceStore,
    content: bool,
    jobs: Receiver<Job>,
    counters: Arc<Counters>,
) {
    while let Ok(first) = jobs.recv() {
        let (mut runs, mut flushes, mut stop) = (Vec::new(), Vec::new(), false);
        let mut take = |job: Job, runs: &mut Vec<RunId>| match job {
            Job::Run(id) => runs.push(id),
            Job::Flush(done) => flushes.push(done),
            Job::Stop => stop = true,
        };
        take(first, &mut runs);
        while runs.len() < BATCH_RUNS {
            match jobs.try_recv() {
                Ok(job) => take(job, &mut runs),
                Err(_) => break,
            }
        }
        if !runs.is_empty() {
            send(&exporter, &store, content, &runs, &counters);
        }
        for done in flushes {
            let _ = done.send(());
        }
        if stop {
            break;
        }
    }
    let _ = exporter.shutdown();
}

fn send(
    exporter: &opentelemetry_otlp::SpanExporter,
    store: &TraceStore,
    content: bool,
    runs: &[RunId],
    counters: &Counters,
) {
    let mut spans: Vec<SpanData> = Vec::new();
    let mut read = 0u64;
    for id in runs {
        let record = store.run(*id).ok().flatten();
        match (record, store.steps(*id)) {
            (Some(run), Ok(steps)) => {
                spans.extend(run_spans(&run, &steps, content));
                read += 1;
            }
            (_, Err(e)) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(run = %id, "OTLP export: cannot read the run: {e}");
            }
            (None, _) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(run = %id, "OTLP export: no such run");
            }
        }
    }
    let n = spans.len() as u64;
    match futures_executor::block_on(exporter.export(spans)) {
        Ok(()) => {
            counters.runs.fetch_add(read, Ordering::Relaxed);
            counters.spans.fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => {
            counters.failed.fetch_add(read, Ordering::Relaxed);
            tracing::warn!("OTLP export of {read} runs failed: the collector answered {e}; they stay in the store");
        }
    }
}
