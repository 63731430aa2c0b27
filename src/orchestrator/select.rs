//! Choosing stored `ask` and `serve` runs by kind, time, verdict, model and tag: what
//! a batch replay forks and what an export sends.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AskRecord, OutcomeSummary, Verification};
use crate::{
    trace::{run_kind, RunId, RunRecord, RunStatus, TraceStore},
    Error, Result,
};

/// Which stored runs to take. Written `key=value,key=value`: `kind=ask|serve|verify`,
/// `since=DATE`, `until=DATE` (RFC 3339, or `YYYY-MM-DD` for midnight UTC),
/// `verdict=verified|refuted|unknown`, `model=TEXT` (part of the model's spec),
/// `tag=NAME`, `limit=N` (the newest N); or `all`. Only completed, verified (not
/// passed-through) runs that are not themselves forks of a batch are taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFilter {
    /// One kind, or both `ask` and `serve` when `None`.
    pub kind: Option<String>,
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Started before.
    pub until: Option<DateTime<Utc>>,
    /// The stored verdict.
    pub verdict: Option<Verification>,
    /// Text the run's model spec contains.
    pub model: Option<String>,
    /// A tag the run carries.
    pub tag: Option<String>,
    /// At most this many, the newest.
    pub limit: Option<usize>,
}

impl FromStr for RunFilter {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: String| Error::BadSelection { filter: s.to_string(), reason };
        let mut filter = RunFilter::default();
        if s.trim() == "all" {
            return Ok(filter);
        }
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| bad(format!("{part:?} is not KEY=VALUE")))?;
            let time = |v: &str| -> Result<DateTime<Utc>> {
                crate::trace::parse_time(v)
                    .ok_or_else(|| bad(format!("{key}={v}: not a date (YYYY-MM-DD) or an RFC 3339 time")))
            };
            match key {
                "kind" if [run_kind::ASK, run_kind::SERVE, run_kind::VERIFY].contains(&value) => {
                    filter.kind = Some(value.into())
                }
                "kind" => return Err(bad(format!("kind={value}: only ask, serve and verify runs can be replayed"))),
                "since" => filter.since = Some(time(value)?),
                "until" => filter.until = Some(time(value)?),
                "verdict" => {
                    filter.verdict = Some(match value {
                        "verified" => Verification::Verified,
                        "refuted" => Verification::Refuted,
                        "unknown" => Verification::Unknown,
                        _ => return Err(bad(format!("verdict={value}: one of verified, refuted, unknown"))),
                    })
                }
                "model" => filter.model = Some(value.into()),
                "tag" => filter.tag = Some(value.into()),
                "limit" => {
                    filter.limit = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| bad(format!("limit={value}: a whole number of runs, at least 1")))?,
                    )
                }
                _ => return Err(bad(format!("unknown key {key:?}: kind, since, until, verdict, model, tag, limit"))),
            }
        }
        Ok(filter)
    }
}

/// Whether `tag` can be a run's tag: 1 to 64 characters, none of them a comma or `=`
/// (a filter could not name it) or a control character.
pub fn check_tag(tag: &str) -> std::result::Result<(), String> {
    if tag.is_empty() || tag.chars().count() > 64 {
        return Err(format!("a tag has 1 to 64 characters, {tag:?} has {}", tag.chars().count()));
    }
    if tag.chars().any(|c| c == ',' || c == '=' || c.is_control()) {
        return Err(format!("a tag cannot hold a comma, `=` or a control character: {tag:?}"));
    }
    Ok(())
}

impl RunFilter {
    /// Whether the stored `run` is taken.
    pub fn matches(&self, run: &RunRecord) -> bool {
        let kind_ok = match &self.kind {
            Some(k) => &run.kind == k,
            None => run.kind == run_kind::ASK || run.kind == run_kind::SERVE,
        };
        // Runs in a group are an experiment's items or forks, left out; a verify run is
        // its batch's record, taken unless it is itself a fork.
        let grouped_out = if run.kind == run_kind::VERIFY { run.parent.is_some() } else { run.group.is_some() };
        if !kind_ok || run.status != RunStatus::Completed || grouped_out {
            return false;
        }
        if run.input.get("passthrough").is_some() {
            return false;
        }
        if self.since.is_some_and(|t| run.started_at < t) || self.until.is_some_and(|t| run.started_at >= t) {
            return false;
        }
        let Some(summary) = OutcomeSummary::of(run) else { return false };
        if self.verdict.is_some_and(|v| v != summary.verified) {
            return false;
        }
        if self.model.is_none() && self.tag.is_none() {
            return true;
        }
        let Ok(record) = serde_json::from_value::<AskRecord>(run.config.clone()) else { return false };
        self.model.as_ref().is_none_or(|m| record.model.spec.contains(m.as_str()))
            && self.tag.as_ref().is_none_or(|t| record.tags.contains(t))
    }

    /// The ids of the stored runs taken, oldest first.
    pub fn select(&self, store: &TraceStore) -> Result<Vec<RunId>> {
        let (runs, _) = store.readable_runs()?;
        let mut ids: Vec<RunId> = runs.iter().filter(|r| self.matches(r)).map(|r| r.id).collect();
        if let Some(n) = self.limit {
            ids = ids.split_off(ids.len().saturating_sub(n));
        }
        Ok(ids)
    }
}
