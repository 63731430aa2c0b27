//! `Model`: a model opened from a spec and its connection settings, once, and shared
//! by every call given it.

use std::{path::PathBuf, sync::Arc};

use pyo3::prelude::*;
use serde_json::{Map, Value};

use recheck::{home::Home, llm::ChatModel, ModelSettings};

use crate::{errors::to_py, runtime::detached};

/// An open model: its spec, the settings it was opened with (agents naming a model of
/// their own open it with the same ones) and its home (the model cache).
#[pyclass(frozen, module = "recheck._recheck")]
pub struct NativeModel {
    pub spec: String,
    pub settings: ModelSettings,
    pub home: Home,
    pub model: Arc<dyn ChatModel>,
}

#[pymethods]
impl NativeModel {
    /// Open `spec` with `settings` (a JSON object of model settings) under `home`.
    #[new]
    #[pyo3(signature = (spec, settings, home=None))]
    fn new(py: Python<'_>, spec: String, settings: &str, home: Option<PathBuf>) -> PyResult<Self> {
        let settings = ModelSettings::from_values(&object(settings)?).map_err(to_py)?;
        let home = Home::resolve(home).map_err(|e| to_py(e.into()))?;
        let model = detached(py, || settings.open(&home, &spec, &|line| eprintln!("{line}")))?.map_err(to_py)?;
        Ok(Self { spec, settings, home, model })
    }

    /// The spec it was opened from.
    #[getter]
    fn spec(&self) -> &str {
        &self.spec
    }

    /// What it is, as recorded with every call (JSON).
    fn info(&self) -> String {
        serde_json::to_string(&recheck::llm::identity(self.model.as_ref())).unwrap_or_default()
    }
}

impl NativeModel {
    /// Open a model an agent config names for itself, the way this one was opened.
    pub fn open_other(&self, spec: &str) -> recheck::Result<Arc<dyn ChatModel>> {
        self.settings.open(&self.home, spec, &|line| eprintln!("{line}"))
    }
}

/// A JSON object handed over by the Python layer.
pub fn object(json: &str) -> PyResult<Map<String, Value>> {
    match serde_json::from_str(json) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(crate::errors::usage(format!("settings must be a JSON object, got {json:?}"))),
    }
}
