//! The crate's errors as the package's exceptions (`recheck.errors`): the class chosen
//! by what failed, the message as the command line prints it (causes joined by ": "),
//! and the command line's hint as the exception's `hint`.

use pyo3::{prelude::*, types::PyAnyMethods};
use serde::Serialize;

use recheck::{agents::AgentError, trace::TraceError, Error};

/// `e` as the exception of its class.
pub fn to_py(e: Error) -> PyErr {
    Python::attach(|py| raise(py, class(&e), &message(&e), e.hint()).unwrap_or_else(|failed| failed))
}

/// An exception of class `name` (one of `recheck.errors`) with `message` and `hint`.
pub fn raise(py: Python<'_>, name: &str, message: &str, hint: Option<&str>) -> PyResult<PyErr> {
    let class = py.import("recheck.errors")?.getattr(name)?;
    let exception = class.call1((message,))?;
    exception.setattr("hint", hint)?;
    Ok(PyErr::from_value(exception))
}

/// A usage error (a value the caller passed that cannot be used).
pub fn usage(message: impl Into<String>) -> PyErr {
    raised("UsageError", &message.into())
}

/// An exception of class `name` with `message` and no hint.
pub fn raised(name: &str, message: &str) -> PyErr {
    Python::attach(|py| raise(py, name, message, None).unwrap_or_else(|failed| failed))
}

/// `value` as JSON text. The crate's results always serialise; were one not to, that
/// is an exception here, not a panic across the boundary.
pub fn json_text<T: Serialize + ?Sized>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| raised("Error", &format!("cannot write the result as JSON: {e}")))
}

/// `value` as a JSON value (see [`json_text`]).
pub fn json_value<T: Serialize + ?Sized>(value: &T) -> PyResult<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| raised("Error", &format!("cannot write the result as JSON: {e}")))
}

/// The exception class for `e`.
pub fn class(e: &Error) -> &'static str {
    if e.is_usage() {
        return "UsageError";
    }
    match e {
        Error::BadInput(_) => "UsageError",
        Error::Trace(TraceError::InUse { .. }) => "StoreInUse",
        Error::Trace(TraceError::Damaged { .. }) => "StoreDamaged",
        Error::Trace(_) | Error::Remote(_) | Error::Home(_) => "StoreError",
        Error::Llm(_) | Error::RunFailed { .. } | Error::Agent(AgentError::Llm(_)) => "ModelError",
        Error::Unverifiable { .. } => "UnverifiableError",
        Error::Corpus(_) | Error::Embed(_) => "CorpusError",
        Error::Eval(_) | Error::Dataset(_) | Error::Analysis(_) | Error::NotReplayable { .. } => "EvalError",
        _ => "Error",
    }
}

/// The message with its causes, as `error: {e:#}` prints it on the command line.
pub fn message(e: &Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}
