//! Running the crate's async work from Python: on the one tokio runtime the package
//! shares with its async twins (pyo3-async-runtimes'), with the GIL released.

use std::{future::Future, time::Duration};

use pyo3::prelude::*;

/// The package's runtime.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Run `work` to its end with the GIL released. Every 50 ms the calling thread takes
/// the GIL back for a moment to check for signals: Ctrl-C drops `work` (runs it had
/// started stay as stored, marked running) and raises `KeyboardInterrupt`.
pub fn block_on<T: Send>(py: Python<'_>, work: impl Future<Output = PyResult<T>> + Send) -> PyResult<T> {
    py.detach(|| {
        runtime().block_on(async {
            tokio::pin!(work);
            // The first check after 50 ms: a short call never takes the GIL back.
            let every = Duration::from_millis(50);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    out = &mut work => return out,
                    _ = tick.tick() => Python::attach(|py| py.check_signals())?,
                }
            }
        })
    })
}

/// Run blocking `work` with the GIL released, inside the runtime's context (opening
/// the embedded model starts its worker there).
pub fn detached<T: Send>(py: Python<'_>, work: impl FnOnce() -> T + Send) -> T {
    py.detach(|| {
        let _inside = runtime().enter();
        work()
    })
}
