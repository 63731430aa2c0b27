//! The running tally of a batch of verified records, and the summary stored as the
//! `verify-batch` run's output: what `recheck verify FILE` prints and the Python
//! package's `verify_many` returns.

use serde_json::{json, Value};

/// A batch's rows (`verify_row`s and error rows), counted as they are written: the
/// verified share and mean faithfulness, each with a 95% interval.
#[derive(Debug, Default, Clone)]
pub struct BatchTally {
    /// Rows seen.
    pub records: u64,
    /// Error rows among them.
    pub failed: u64,
    /// Rows whose answer was verified.
    pub verified: usize,
    /// The faithfulness of each row that has one.
    pub faithfulness: Vec<f64>,
}

impl BatchTally {
    /// Count one result row (an error row has an `error`).
    pub fn add(&mut self, row: &Value) {
        self.records += 1;
        if row.get("error").is_some() {
            self.failed += 1;
            return;
        }
        self.verified += usize::from(row["verified"] == json!(true));
        if let Some(f) = row["faithfulness"].as_f64() {
            self.faithfulness.push(f);
        }
    }

    /// The mean faithfulness so far, for the progress bar.
    pub fn running(&self) -> String {
        match self.faithfulness.len() {
            0 => "-".into(),
            n => format!("{:.3}", self.faithfulness.iter().sum::<f64>() / n as f64),
        }
    }

    /// The batch run's summary: counts, the verified share and mean faithfulness
    /// with their intervals.
    pub fn summary(&self) -> Value {
        let done = (self.records - self.failed) as usize;
        let share = crate::analysis::intervals::wilson(self.verified, done);
        let mean = crate::analysis::intervals::bootstrap(&self.faithfulness, |s| {
            (!s.is_empty()).then(|| s.iter().copied().sum::<f64>() / s.len() as f64)
        });
        let interval = |v: Option<(f64, f64, f64)>| v.map(|(p, lo, hi)| json!({ "value": p, "low": lo, "high": hi }));
        json!({
            "records": self.records,
            "failed": self.failed,
            "verified": self.verified,
            "verified_share": interval(share),
            "mean_faithfulness": interval(mean),
            "with_faithfulness": self.faithfulness.len(),
        })
    }
}
