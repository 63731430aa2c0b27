//! `recheck._recheck`: the native module under the `recheck` Python package.
//!
//! It converts and maps errors, nothing more: every capability runs the recheck
//! crate's own code path (the one the `recheck` command runs), with settings checked by
//! the crate ([`recheck::Settings`], [`recheck::ModelSettings`]) and results handed back
//! as the JSON the command line prints, which the typed Python layer (`recheck/`) turns
//! into frozen dataclasses. Every call releases the GIL and runs on the package's one
//! tokio runtime, checking for signals every 50 ms, so Ctrl-C stops it; the async twins
//! are these calls on Python threads ([`runtime`] says why).
//! The process holds one store handle per home ([`store`]), as sled allows.

use pyo3::prelude::*;

mod calls;
mod corpus;
mod errors;
mod eval;
mod model;
mod runtime;
mod store;

#[pymodule]
fn _recheck(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<model::NativeModel>()?;
    m.add_class::<store::NativeStore>()?;
    m.add_class::<runtime::Cancel>()?;
    m.add_function(wrap_pyfunction!(calls::ask, m)?)?;
    m.add_function(wrap_pyfunction!(calls::verify, m)?)?;
    m.add_function(wrap_pyfunction!(calls::verify_many, m)?)?;
    m.add_function(wrap_pyfunction!(corpus::index_build, m)?)?;
    m.add_function(wrap_pyfunction!(corpus::index_search, m)?)?;
    m.add_function(wrap_pyfunction!(eval::eval_run, m)?)?;
    m.add_function(wrap_pyfunction!(eval::eval_report, m)?)?;
    Ok(())
}
