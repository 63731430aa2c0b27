//! `--otlp URL` on `ask`, `eval run` and `serve`: runs sent to an OpenTelemetry
//! collector as they finish.

use std::time::Duration;

use clap::Args;
use recheck::{
    telemetry::{OtlpExporter, OtlpOptions},
    trace::TraceStore,
};

/// How long the last exports may take when the command ends.
const FINISH: Duration = Duration::from_secs(30);

/// Live OpenTelemetry export.
#[derive(Debug, Args)]
pub struct OtlpArgs {
    /// Send each run, as it finishes, to the OTLP/HTTP collector at URL (e.g. Phoenix at
    /// http://127.0.0.1:6006, or a collector's http://HOST:4318); `/v1/traces` is added
    /// to a URL without a path. Sent from a thread of its own: a collector that is down
    /// never fails or slows a run, and the store keeps every run.
    #[arg(long, value_name = "URL")]
    pub otlp: Option<String>,

    /// Leave message content (prompts, answers, tool inputs and outputs) out of the spans.
    #[arg(long, requires = "otlp")]
    pub otlp_no_content: bool,
}

impl OtlpArgs {
    /// The options these flags give, if export is on.
    pub fn options(&self) -> anyhow::Result<Option<OtlpOptions>> {
        let Some(url) = &self.otlp else { return Ok(None) };
        let mut options = OtlpOptions::new(url).map_err(|e| super::UsageError(format!("--otlp: {e}")))?;
        options.content = !self.otlp_no_content;
        Ok(Some(options))
    }

    /// An exporter watching `store`, if export is on.
    pub fn live(&self, store: &TraceStore) -> anyhow::Result<Option<OtlpExporter>> {
        let Some(options) = self.options()? else { return Ok(None) };
        let exporter = OtlpExporter::start(store, &options)?;
        exporter.watch(store);
        Ok(Some(exporter))
    }
}

/// Send what is left and say what was sent (on stderr).
pub fn finish(exporter: Option<OtlpExporter>, wait: Option<Duration>) {
    let Some(exporter) = exporter else { return };
    let c = exporter.finish(wait.unwrap_or(FINISH));
    if c.failed + c.dropped + c.pending > 0 {
        eprintln!(
            "OTLP: {} runs ({} spans) sent; {} failed, {} dropped (queue full) and {} not sent in time, all still in the store (`recheck traces export --otlp URL` sends them)",
            c.runs, c.spans, c.failed, c.dropped, c.pending
        );
    } else {
        eprintln!("OTLP: {} runs ({} spans) sent", c.runs, c.spans);
    }
}
