//! Model spec strings: how a user names a model on the command line and in configs.

use std::{fmt, path::PathBuf, str::FromStr};

use super::LlmError;

/// A parsed model spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// `openai:MODEL`: any OpenAI-compatible chat-completions server.
    OpenAi {
        /// Model name sent to the server.
        model: String,
    },
    /// `local` (the default embedded model) or `local:/path/model.gguf`.
    Local {
        /// A GGUF file; `None` means the default model from the cache.
        path: Option<PathBuf>,
    },
    /// `sim:key=value,...`: the planted-parameter simulator for checking analyses
    /// (not a model; its parameters are checked when it is opened).
    Sim {
        /// The parameter list as written (validated when parsed).
        params: String,
    },
}

impl FromStr for ModelSpec {
    type Err = LlmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| LlmError::BadSpec { spec: s.to_string(), reason: reason.to_string() };
        let (backend, rest) = match s.split_once(':') {
            Some((b, r)) => (b, Some(r)),
            None => (s, None),
        };
        match (backend, rest) {
            ("openai", Some(model)) if !model.trim().is_empty() => Ok(Self::OpenAi { model: model.to_string() }),
            ("openai", _) => Err(bad("`openai` needs a model name, as in `openai:gpt-4o-mini`")),
            ("local", None) => Ok(Self::Local { path: None }),
            ("local", Some(p)) if !p.trim().is_empty() => Ok(Self::Local { path: Some(PathBuf::from(p)) }),
            ("local", Some(_)) => Err(bad("`local:` needs a path to a .gguf file")),
            ("sim", params) => {
                let params = params.unwrap_or("").to_string();
                Ok(Self::Sim { params })
            }
            ("", _) => Err(bad("empty spec")),
            (other, _) => Err(bad(&format!("unknown backend `{other}`"))),
        }
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OpenAi { model } => write!(f, "openai:{model}"),
            Self::Local { path: None } => write!(f, "local"),
            Self::Local { path: Some(p) } => write!(f, "local:{}", p.display()),
            Self::Sim { params } if params.is_empty() => write!(f, "sim"),
            Self::Sim { params } => write!(f, "sim:{params}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for s in
            ["openai:gpt-4o-mini", "openai:org/model:tag", "local", "local:/m/x.gguf", "sim", "sim:adopt=0.2,seed=3"]
        {
            let spec: ModelSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
    }

    #[test]
    fn rejects_unknown_and_empty() {
        for s in ["", "gpt4", "openai", "openai:", "local:", "hf:foo"] {
            let err = s.parse::<ModelSpec>().unwrap_err();
            assert!(err.to_string().contains("model spec"), "{s}: {err}");
        }
    }
}
