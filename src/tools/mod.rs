//! Exact tools that settle claims: arithmetic, primality, graph reachability, dates,
//! corpus search. A [`Tool`] takes JSON arguments and returns JSON; the registry finds
//! tools by name. Tools never run model-written code.

mod arithmetic;
mod dates;
mod graph;
mod primality;
mod search;

use std::{collections::BTreeMap, sync::Arc};

use serde_json::Value;

pub use arithmetic::{evaluate_expression, Arithmetic, ArithmeticOutput};
pub use dates::Dates;
pub use graph::{parse_flights, reachable_path, Graph, GraphOutput};
pub use primality::{factorize, is_prime, Primality, PrimalityOutput};
pub use search::CorpusSearch;

/// Errors of tool calls.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The arguments are not what the tool takes.
    #[error("tool {tool}: bad input: {detail}")]
    BadInput {
        /// Tool name.
        tool: String,
        /// What was wrong.
        detail: String,
    },
    /// No tool of that name is registered.
    #[error("no tool named {0:?}")]
    Unknown(String),
    /// The tool failed while running.
    #[error("tool {tool} failed: {detail}")]
    Failed {
        /// Tool name.
        tool: String,
        /// What failed.
        detail: String,
    },
}

/// An exact checker with JSON input and output.
pub trait Tool: Send + Sync {
    /// Registry name.
    fn name(&self) -> &str;
    /// One line on what it does.
    fn description(&self) -> &str;
    /// JSON Schema of its arguments.
    fn input_schema(&self) -> Value;
    /// Run it.
    fn call(&self, input: &Value) -> Result<Value, ToolError>;
}

/// Tools by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl ToolRegistry {
    /// The exact tools that need nothing external: arithmetic, primality, graph, dates.
    pub fn standard() -> Self {
        let mut r = Self::default();
        r.register(Arc::new(Arithmetic));
        r.register(Arc::new(Primality));
        r.register(Arc::new(Graph));
        r.register(Arc::new(Dates));
        r
    }

    /// Add or replace a tool.
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.name().to_string(), tool);
    }

    /// A tool by name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// Call a tool by name.
    pub fn call(&self, name: &str, input: &Value) -> Result<Value, ToolError> {
        self.get(name).ok_or_else(|| ToolError::Unknown(name.to_string()))?.call(input)
    }

    /// Registered names.
    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    /// The registry restricted to `names` (an agent's allowed tools).
    pub fn only(&self, names: &[String]) -> Self {
        let tools = self.tools.iter().filter(|(n, _)| names.contains(n)).map(|(n, t)| (n.clone(), t.clone())).collect();
        Self { tools }
    }
}

/// A tool's typed output as the JSON the [`Tool`] trait returns.
pub(crate) fn to_output<T: serde::Serialize>(tool: &str, out: &T) -> Result<Value, ToolError> {
    serde_json::to_value(out).map_err(|e| ToolError::Failed { tool: tool.to_string(), detail: e.to_string() })
}

/// A non-negative integer argument given as a JSON number or a decimal string.
pub(crate) fn arg_integer(input: &Value, key: &str) -> Result<u128, ToolError> {
    let bad = |detail: String| ToolError::BadInput { tool: key.to_string(), detail };
    match input.get(key) {
        Some(Value::Number(n)) => {
            n.as_u64().map(u128::from).ok_or_else(|| bad(format!("{key} must be a non-negative integer")))
        }
        Some(Value::String(s)) => s
            .trim()
            .replace(['_', ','], "")
            .parse()
            .map_err(|_| bad(format!("{key} must be a non-negative integer, got {s:?}"))),
        _ => Err(bad(format!("missing integer argument {key:?}"))),
    }
}

/// A string argument.
pub(crate) fn arg_str<'a>(input: &'a Value, tool: &str, key: &str) -> Result<&'a str, ToolError> {
    input.get(key).and_then(Value::as_str).ok_or_else(|| ToolError::BadInput {
        tool: tool.to_string(),
        detail: format!("missing string argument {key:?}"),
    })
}
