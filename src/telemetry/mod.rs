//! OpenTelemetry export of stored runs (feature `otlp`): each run becomes one trace
//! sent over OTLP/HTTP with protobuf bodies, readable by Arize Phoenix, Langfuse, Jaeger
//! or any OpenTelemetry collector.
//!
//! ```no_run
//! # fn main() -> recheck::Result<()> {
//! use std::time::Duration;
//! use recheck::{telemetry::{OtlpExporter, OtlpOptions}, TraceStore};
//!
//! let store = TraceStore::open("traces")?;
//! let exporter = OtlpExporter::start(&store, &OtlpOptions::new("http://127.0.0.1:6006")?)?;
//! for run in store.list_runs()? {
//!     exporter.send(run.id);
//! }
//! let counts = exporter.finish(Duration::from_secs(60));
//! println!("{} runs, {} spans sent; {} failed", counts.runs, counts.spans, counts.failed);
//! # Ok(()) }
//! ```

mod export;
mod spans;

use std::time::Duration;

pub use export::{ExportCounts, OtlpExporter};
pub use spans::run_spans;

/// Where and how to export.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpOptions {
    /// The collector's traces endpoint (`http://host:port/v1/traces`).
    pub endpoint: String,
    /// Include messages, prompts, answers and tool inputs and outputs.
    pub content: bool,
    /// Deadline of one export request, its retries included.
    pub timeout: Duration,
    /// Runs waiting to be sent at most; more are dropped from the export (never from
    /// the store) and counted.
    pub queue: usize,
    /// The project the spans belong to (the resource's `openinference.project.name`,
    /// which Phoenix files them under).
    pub project: String,
}

impl OtlpOptions {
    /// Export to `url`: a collector's base URL (`http://127.0.0.1:4318`, to which
    /// `/v1/traces` is added) or its full traces endpoint (any URL with a path).
    pub fn new(url: &str) -> Result<Self, TelemetryError> {
        let bad = |reason: &str| TelemetryError::BadEndpoint { url: url.to_string(), reason: reason.to_string() };
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| bad("must start with http:// or https://"))?;
        let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad("has no host"));
        }
        if let Some((_, port)) = host.rsplit_once(':').filter(|_| !host.ends_with(']')) {
            if port.parse::<u16>().is_err() {
                return Err(bad("its port is not a number from 0 to 65535"));
            }
        }
        let endpoint = match path.trim_end_matches('/') {
            "" => format!("{}/v1/traces", url.trim_end_matches('/')),
            _ => url.to_string(),
        };
        Ok(Self { endpoint, content: true, timeout: Duration::from_secs(10), queue: 10_000, project: "recheck".into() })
    }
}

/// Why an export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The collector's URL is not usable.
    #[error("OTLP endpoint {url:?} {reason}")]
    BadEndpoint {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The exporter could not be built.
    #[error("OTLP exporter for {endpoint}: {reason}")]
    Exporter {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_traces_path_and_a_full_one_is_kept() {
        assert_eq!(OtlpOptions::new("http://127.0.0.1:6006").unwrap().endpoint, "http://127.0.0.1:6006/v1/traces");
        assert_eq!(OtlpOptions::new("http://h:4318/").unwrap().endpoint, "http://h:4318/v1/traces");
        assert_eq!(
            OtlpOptions::new("https://c.example/otlp/v1/traces").unwrap().endpoint,
            "https://c.example/otlp/v1/traces"
        );
        for bad in ["127.0.0.1:6006", "http://", "http://host:port", "ftp://x", "http://a b:1"] {
            assert!(OtlpOptions::new(bad).is_err(), "{bad}");
        }
    }
}
