//! The process's store handles, one per home (sled allows one open store per process),
//! and `Store`: reading and moving runs. When another process holds the home's store,
//! a `Store` reads through the `recheck serve` that holds it (as `recheck traces`
//! does), else a snapshot of it; writes then raise `StoreInUse`.

use std::{collections::BTreeMap, path::PathBuf, sync::Mutex};

use pyo3::prelude::*;
use serde_json::json;

use recheck::{
    home::{Home, Remote},
    trace::{parse_time, ListingFilter, RunId, TraceError, TraceStore},
    Error,
};

use crate::{
    errors::{json_text, json_value, to_py},
    runtime::{block_on, detached},
};

/// The open stores, by the absolute path of their directory.
static OPEN: Mutex<BTreeMap<PathBuf, TraceStore>> = Mutex::new(BTreeMap::new());

fn key(home: &Home) -> PathBuf {
    let dir = home.traces_dir();
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The store of `home`, opened (and the home made) on first use in this process.
pub fn shared(home: &Home) -> recheck::Result<TraceStore> {
    let mut open = OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = key(home);
    if let Some(store) = open.get(&key) {
        return Ok(store.clone());
    }
    home.ensure()?;
    let store = TraceStore::open(&key)?;
    open.insert(key, store.clone());
    Ok(store)
}

/// The home `path` names, or the default one.
pub fn home(path: Option<PathBuf>) -> PyResult<Home> {
    Home::resolve(path).map_err(|e| to_py(e.into()))
}

/// Where a `Store` reads from.
enum Source {
    /// This process's own handle.
    Own(TraceStore),
    /// A copy, taken when another process held the store.
    Snapshot(TraceStore),
    /// The `recheck serve` holding it.
    Server(Remote),
}

/// A home's trace store.
#[pyclass(frozen, module = "recheck._recheck")]
pub struct NativeStore {
    home: Home,
    /// `None` once closed.
    source: Mutex<Option<Source>>,
}

#[pymethods]
impl NativeStore {
    #[new]
    #[pyo3(signature = (home=None))]
    fn new(py: Python<'_>, home: Option<PathBuf>) -> PyResult<Self> {
        let home = self::home(home)?;
        let source = match detached(py, || shared(&home))? {
            Ok(store) => Source::Own(store),
            Err(Error::Trace(e @ TraceError::InUse { .. })) => {
                let say = |line: &str| eprintln!("{line}");
                match block_on(py, None, async { Remote::running(&home, &say).await.map_err(|e| to_py(e.into())) })? {
                    Some(remote) => Source::Server(remote),
                    None => Source::Snapshot(
                        TraceStore::open_snapshot(home.traces_dir()).map_err(|_| to_py(Error::Trace(e)))?,
                    ),
                }
            }
            Err(e) => return Err(to_py(e)),
        };
        Ok(Self { home, source: Mutex::new(Some(source)) })
    }

    /// `store` (this process's handle), `snapshot`, `server`, or `closed`.
    #[getter]
    fn source(&self) -> &'static str {
        match &*self.lock() {
            Some(Source::Own(_)) => "store",
            Some(Source::Snapshot(_)) => "snapshot",
            Some(Source::Server(_)) => "server",
            None => "closed",
        }
    }

    /// The home directory.
    #[getter]
    fn home(&self) -> PathBuf {
        self.home.root().to_path_buf()
    }

    /// The runs, as `recheck traces list --json` gives them (JSON), of one `kind`,
    /// started at or after `since` and before `until` (dates or RFC 3339 times).
    #[pyo3(signature = (items=false, kind=None, since=None, until=None))]
    fn listing(
        &self,
        py: Python<'_>,
        items: bool,
        kind: Option<String>,
        since: Option<String>,
        until: Option<String>,
    ) -> PyResult<String> {
        let time = |name: &str, text: Option<String>| match text {
            None => Ok(None),
            Some(t) => parse_time(&t).map(Some).ok_or_else(|| {
                crate::errors::usage(format!("{name} must be a date (YYYY-MM-DD) or an RFC 3339 time, got {t:?}"))
            }),
        };
        let filter = ListingFilter { kind, since: time("since", since)?, until: time("until", until)? };
        let listing = match self.reader()? {
            Reader::Store(s) => s.listing(items).map_err(|e| to_py(e.into()))?,
            Reader::Server(r) => block_on(py, None, async { r.list(items).await.map_err(|e| to_py(e.into())) })?,
        };
        json_text(&listing.filtered(&filter))
    }

    /// One run and its steps, by id or unique prefix (JSON `{"run", "steps"}`).
    fn run(&self, py: Python<'_>, id: String) -> PyResult<String> {
        let store = match self.reader()? {
            Reader::Store(s) => s,
            Reader::Server(r) => {
                block_on(py, None, async { r.fetch(std::slice::from_ref(&id)).await.map_err(|e| to_py(e.into())) })?
            }
        };
        let read = || -> Result<_, TraceError> {
            let id = store.resolve(&id)?;
            let run = store.run(id)?.ok_or(TraceError::NoSuchRun(id.to_string()))?;
            Ok((run, store.steps(id)?))
        };
        let (run, steps) = read().map_err(|e| to_py(e.into()))?;
        json_text(&json!({ "run": json_value(&run)?, "steps": json_value(&steps)? }))
    }

    /// Write runs `ids` (all when empty) with their steps to `path` as JSONL; the
    /// counts as JSON.
    #[pyo3(signature = (path, ids=Vec::new()))]
    fn export(&self, py: Python<'_>, path: PathBuf, ids: Vec<String>) -> PyResult<String> {
        let store = match self.reader()? {
            Reader::Store(s) => s,
            Reader::Server(r) => block_on(py, None, async { r.fetch(&ids).await.map_err(|e| to_py(e.into())) })?,
        };
        detached(py, || {
            let ids = ids.iter().map(|id| store.resolve(id)).collect::<Result<Vec<RunId>, _>>()?;
            store.export_jsonl(&path, &ids)
        })?
        .map_err(|e| to_py(e.into()))
        .and_then(|counts| json_text(&counts))
    }

    /// Import a JSONL export (runs already present are skipped); the counts as JSON.
    fn import_(&self, py: Python<'_>, path: PathBuf) -> PyResult<String> {
        let store = self.writable()?;
        let counts = detached(py, || store.import_jsonl(&path))?.map_err(|e| to_py(e.into()))?;
        json_text(&counts)
    }

    /// Let go of this process's handle on the store (it closes once no call is using
    /// it) and of this object's; later reads through this object raise `StoreError`.
    fn close(&self) {
        if let Some(Source::Own(_)) = self.lock().take() {
            let mut open = OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            open.remove(&key(&self.home));
        }
    }
}

/// What a read goes to.
enum Reader {
    Store(TraceStore),
    Server(Remote),
}

impl NativeStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Source>> {
        self.source.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn closed(&self) -> PyErr {
        crate::errors::raised("StoreError", &format!("the store of {} was closed", self.home.root().display()))
    }

    /// Where reads go (a clone: no lock is held while reading).
    fn reader(&self) -> PyResult<Reader> {
        match &*self.lock() {
            Some(Source::Own(s) | Source::Snapshot(s)) => Ok(Reader::Store(s.clone())),
            Some(Source::Server(r)) => Ok(Reader::Server(r.clone())),
            None => Err(self.closed()),
        }
    }

    /// The store, if this process holds it; else the error the command line gives.
    fn writable(&self) -> PyResult<TraceStore> {
        match &*self.lock() {
            Some(Source::Own(s)) => Ok(s.clone()),
            Some(_) => Err(to_py(Error::Trace(TraceError::InUse { path: self.home.traces_dir() }))),
            None => Err(self.closed()),
        }
    }
}
