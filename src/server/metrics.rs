//! `GET /metrics`: Prometheus text from prometheus-client.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// A request's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The HTTP status.
    pub status: u16,
    /// `true`, `false`, `unknown`, `skipped` (passed through) or `error`.
    pub verdict: String,
}

/// A latency's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    /// `verified`, `passthrough` or `stream`.
    pub mode: &'static str,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ModeLabels, Histogram>,
    upstream_calls: Counter,
    upstream_retries: Gauge<u64, AtomicU64>,
    in_flight: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("recheck");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Chat-completion requests by HTTP status and verdict", requests.clone());
        let latency = Family::<ModeLabels, Histogram>::new_with_constructor(|| {
            // 1 ms to ~65 s, doubling.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 17))
        });
        registry.register("request_duration_seconds", "Chat-completion latency, request to response", latency.clone());
        let upstream_calls = Counter::default();
        registry.register("upstream_calls", "Model calls made for requests", upstream_calls.clone());
        let upstream_retries = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "upstream_retries",
            "HTTP model calls retried by this process (connect errors, timeouts, 429, 5xx, broken bodies)",
            upstream_retries.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("requests_in_flight", "Chat-completion requests being answered", in_flight.clone());
        Self { registry, requests, latency, upstream_calls, upstream_retries, in_flight }
    }

    /// Count a finished request.
    pub fn request(&self, status: u16, verdict: &str, mode: &'static str, seconds: f64) {
        self.requests.get_or_create(&RequestLabels { status, verdict: verdict.to_string() }).inc();
        self.latency.get_or_create(&ModeLabels { mode }).observe(seconds);
    }

    /// Count `n` model calls.
    pub fn upstream_calls(&self, n: u64) {
        self.upstream_calls.inc_by(n);
    }

    /// One more, or one fewer, request in flight.
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.inc_by(delta);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        self.upstream_retries.set(crate::llm::retries_total());
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
