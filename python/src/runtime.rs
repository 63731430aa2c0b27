//! Running the crate's async work from Python: on the package's one tokio runtime,
//! with the GIL released, until it ends, Ctrl-C arrives or its caller cancels it.
//!
//! The async twins (`ask_async`, `verify_async`) run these same blocking calls on
//! Python threads of the package's executor and cancel them through a [`Cancel`] flag:
//! Python joins those threads before it finalizes, so no thread of ours touches the
//! interpreter while it shuts down (setting an asyncio result from a runtime thread
//! could race with finalization and crash the process at exit).

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, OnceLock,
    },
    time::Duration,
};

use pyo3::prelude::*;

/// The package's runtime, started on first use.
pub fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("recheck-runtime")
        .build()
        .map_err(|e| crate::errors::raised("Error", &format!("cannot start the async runtime: {e}")))?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// A flag an async twin sets when its asyncio task is cancelled.
#[pyclass(frozen, module = "recheck._recheck")]
#[derive(Default)]
pub struct Cancel(Arc<AtomicBool>);

#[pymethods]
impl Cancel {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Ask the call holding this flag to stop (within 50 ms).
    fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether it was set.
    fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Run `work` to its end with the GIL released. Every 50 ms (the first after 50 ms, so
/// a short call never takes the GIL back) the calling thread checks for signals and for
/// `cancel`: Ctrl-C drops `work` (runs it had started stay stored, marked running) and
/// raises `KeyboardInterrupt`; a set `cancel` drops it and raises `recheck.Cancelled`.
pub fn block_on<T: Send>(
    py: Python<'_>,
    cancel: Option<&Cancel>,
    work: impl Future<Output = PyResult<T>> + Send,
) -> PyResult<T> {
    let runtime = runtime()?;
    let cancel = cancel.map(|c| c.0.clone());
    py.detach(|| {
        runtime.block_on(async {
            tokio::pin!(work);
            let every = Duration::from_millis(50);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    out = &mut work => return out,
                    _ = tick.tick() => {
                        if cancel.as_ref().is_some_and(|c| c.load(Ordering::SeqCst)) {
                            return Err(crate::errors::raised("Cancelled", "the call was cancelled"));
                        }
                        Python::attach(|py| py.check_signals())?;
                    }
                }
            }
        })
    })
}

/// Run blocking `work` with the GIL released, inside the runtime's context (opening
/// the embedded model starts its worker there).
pub fn detached<T: Send>(py: Python<'_>, work: impl FnOnce() -> T + Send) -> PyResult<T> {
    let runtime = runtime()?;
    Ok(py.detach(|| {
        let _inside = runtime.enter();
        work()
    }))
}
