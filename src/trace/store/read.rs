//! Reading the store: runs, their steps, listings and id prefixes.

use chrono::{DateTime, NaiveDate, Utc};

use super::{decode, indexed_key, TraceStore};
use crate::trace::{RunId, RunRecord, StepRecord, TraceError};

/// The runs of a store as `recheck traces list` shows them (and `recheck serve` sends
/// them: `GET /recheck/v1/runs`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Listing {
    /// The runs listed, oldest first.
    pub runs: Vec<ListedRun>,
    /// Why each unreadable run record could not be read.
    #[serde(default)]
    pub unreadable: Vec<String>,
    /// Item runs of experiments left out.
    #[serde(default)]
    pub hidden: usize,
}

/// A run and how many steps it has.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ListedRun {
    /// The run.
    pub run: RunRecord,
    /// Its step count.
    pub steps: usize,
}

/// Which runs of a [`Listing`] to keep: of one kind, started at or after `since` and
/// before `until`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListingFilter {
    /// The run kind (`ask`, `verify`, `eval`, ...).
    pub kind: Option<String>,
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Started before.
    pub until: Option<DateTime<Utc>>,
}

impl Listing {
    /// The listing with only the runs `filter` keeps.
    pub fn filtered(mut self, filter: &ListingFilter) -> Self {
        self.runs.retain(|r| {
            filter.kind.as_ref().is_none_or(|k| &r.run.kind == k)
                && filter.since.is_none_or(|t| r.run.started_at >= t)
                && filter.until.is_none_or(|t| r.run.started_at < t)
        });
        self
    }
}

/// A time as users write it: an RFC 3339 time, or a date (its midnight, UTC).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

impl TraceStore {
    /// One run by id.
    pub fn run(&self, id: RunId) -> Result<Option<RunRecord>, TraceError> {
        let Some(mut run) = self.stored_run(id)? else { return Ok(None) };
        self.configs.resolve(&mut run)?;
        Ok(Some(run))
    }

    /// One run as stored (its config may be a reference).
    pub(super) fn stored_run(&self, id: RunId) -> Result<Option<RunRecord>, TraceError> {
        let key = id.as_bytes();
        self.runs.get(key).map_err(|e| self.sled_err(e))?.map(|raw| decode(key, &raw)).transpose()
    }

    /// A stored run record decoded, its config put back.
    pub(super) fn decode_run(&self, key: &[u8], raw: &[u8]) -> Result<RunRecord, TraceError> {
        let mut run = decode(key, raw)?;
        self.configs.resolve(&mut run)?;
        Ok(run)
    }

    /// Every run, oldest first.
    pub fn list_runs(&self) -> Result<Vec<RunRecord>, TraceError> {
        self.runs
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(|e| self.sled_err(e))?;
                self.decode_run(&k, &v)
            })
            .collect()
    }

    /// What `recheck traces list` shows: the readable runs (experiments' item runs only
    /// with `items`) with their step counts, oldest first.
    pub fn listing(&self, items: bool) -> Result<Listing, TraceError> {
        let (all, unreadable) = self.readable_runs()?;
        let total = all.len();
        let runs = all
            .into_iter()
            .filter(|r| items || r.group.is_none())
            .map(|run| Ok(ListedRun { steps: self.step_count(run.id)?, run }))
            .collect::<Result<Vec<_>, TraceError>>()?;
        let hidden = total - runs.len();
        Ok(Listing { runs, unreadable: unreadable.iter().map(ToString::to_string).collect(), hidden })
    }

    /// Every run that can be read, and an error for each record that cannot (a record
    /// written by a buggy or newer build), so one bad record never hides the rest.
    pub fn readable_runs(&self) -> Result<(Vec<RunRecord>, Vec<TraceError>), TraceError> {
        self.decode_readable(self.runs.iter(), |k, v| self.decode_run(k, v))
    }

    /// A run's steps that can be read, and an error for each that cannot.
    pub fn readable_steps(&self, id: RunId) -> Result<(Vec<StepRecord>, Vec<TraceError>), TraceError> {
        self.decode_readable(self.steps.scan_prefix(id.as_bytes()), decode)
    }

    /// Decode `entries` with `decode`, keeping the records that decode and an error for
    /// each that does not; only a failure of the store itself stops it.
    fn decode_readable<T>(
        &self,
        entries: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        decode: impl Fn(&[u8], &[u8]) -> Result<T, TraceError>,
    ) -> Result<(Vec<T>, Vec<TraceError>), TraceError> {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for kv in entries {
            let (k, v) = kv.map_err(|e| self.sled_err(e))?;
            match decode(&k, &v) {
                Ok(record) => good.push(record),
                Err(e) => bad.push(e),
            }
        }
        Ok((good, bad))
    }

    /// A run's steps in order.
    pub fn steps(&self, id: RunId) -> Result<Vec<StepRecord>, TraceError> {
        self.steps
            .scan_prefix(id.as_bytes())
            .map(|kv| {
                let (k, v) = kv.map_err(|e| self.sled_err(e))?;
                decode(&k, &v)
            })
            .collect()
    }

    /// Step `index` of run `id`, if stored.
    pub fn step(&self, id: RunId, index: u32) -> Result<Option<StepRecord>, TraceError> {
        let key = indexed_key(id, index);
        self.steps.get(key).map_err(|e| self.sled_err(e))?.map(|raw| decode(&key, &raw)).transpose()
    }

    /// How many steps a run has, without decoding them.
    pub fn step_count(&self, id: RunId) -> Result<usize, TraceError> {
        let mut n = 0;
        for key in self.steps.scan_prefix(id.as_bytes()).keys() {
            key.map_err(|e| self.sled_err(e))?;
            n += 1;
        }
        Ok(n)
    }

    /// Resolve a full run id or a unique prefix of one.
    pub fn resolve(&self, id_or_prefix: &str) -> Result<RunId, TraceError> {
        let wanted = id_or_prefix.trim().to_ascii_lowercase();
        if let Ok(id) = wanted.parse::<RunId>() {
            return match self.run(id)? {
                Some(_) => Ok(id),
                None => Err(TraceError::NoSuchRun(id_or_prefix.to_string())),
            };
        }
        if wanted.is_empty() {
            return Err(TraceError::NoSuchRun(id_or_prefix.to_string()));
        }
        let mut hits = Vec::new();
        for key in self.runs.iter().keys() {
            let key = key.map_err(|e| self.sled_err(e))?;
            let Ok(bytes) = <[u8; 16]>::try_from(key.as_ref()) else { continue };
            let id = RunId::from_bytes(bytes);
            if id.to_string().starts_with(&wanted) {
                hits.push(id);
            }
        }
        match hits.as_slice() {
            [one] => Ok(*one),
            [] => Err(TraceError::NoSuchRun(id_or_prefix.to_string())),
            many => Err(TraceError::AmbiguousRun { prefix: id_or_prefix.to_string(), count: many.len() }),
        }
    }
}
