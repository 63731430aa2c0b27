//! `eval_run` and its report: an experiment as `recheck eval run` runs it, and the
//! report as `recheck eval report` computes it from the stored runs.

use std::path::PathBuf;

use pyo3::prelude::*;

use recheck::{
    agents::AgentSet,
    eval::{self, EvalSpec, RunOptions},
};

use crate::{
    errors::{json_text, to_py},
    model::NativeModel,
    runtime::{block_on, detached},
    store::{home, shared},
};

/// Run the experiment of spec file `spec` on `model`; the run as JSON (its id, counts
/// and first failure).
#[pyfunction]
#[pyo3(signature = (spec, model, data_root, limit=None, concurrency=4, store=None))]
pub fn eval_run(
    py: Python<'_>,
    spec: PathBuf,
    model: PyRef<'_, NativeModel>,
    data_root: PathBuf,
    limit: Option<usize>,
    concurrency: usize,
    store: Option<PathBuf>,
) -> PyResult<String> {
    recheck::check_in_flight("concurrency", concurrency).map_err(to_py)?;
    let home = home(store)?;
    let model: &NativeModel = &model;
    let (store, spec, options) = detached(py, || -> recheck::Result<_> {
        let spec = EvalSpec::load(&spec)?;
        let open = |s: &str| model.open_other(s);
        let progress = |line: &str| eprintln!("{line}");
        let agents = AgentSet::builtin()?;
        let options =
            RunOptions::for_spec(&spec, &data_root, &home, model.model.clone(), agents, &open, concurrency, &progress)?;
        Ok((shared(&home)?, spec, options))
    })?
    .map_err(to_py)?;
    block_on(py, None, async move {
        let run = eval::start(&store, &spec, &data_root, limit, &options, &()).await.map_err(to_py)?;
        json_text(&run)
    })
}

/// The report of stored experiment `run` (id or prefix), as JSON.
#[pyfunction]
#[pyo3(signature = (run, store=None))]
pub fn eval_report(py: Python<'_>, run: String, store: Option<PathBuf>) -> PyResult<String> {
    let home = home(store)?;
    let report = detached(py, || -> recheck::Result<_> {
        let store = shared(&home)?;
        let id = store.resolve(&run)?;
        recheck::analysis::compute(&store, id)
    })?;
    json_text(&report.map_err(to_py)?)
}
