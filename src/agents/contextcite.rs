//! ContextCite-style attribution (Cohen-Wang et al., 2024): how much each context
//! source drives the model's log-probability of a statement.
//!
//! Random ablations keep each source with probability 1/2; the model scores the
//! statement under each ablated context (`ChatModel::score_continuation`, no
//! generation); a Lasso fit from the keep-masks to those log-probabilities gives one
//! weight per source: the expected change in log-probability when that source is present.

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::AgentError;
use crate::llm::{ChatModel, LlmError, Message};

/// Settings of one attribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContextCiteOptions {
    /// Random ablations scored (plus the full context).
    pub ablations: usize,
    /// L1 penalty of the Lasso fit.
    pub l1: f64,
    /// Seed of the ablation masks.
    pub seed: u64,
}

impl Default for ContextCiteOptions {
    fn default() -> Self {
        Self { ablations: 32, l1: 0.01, seed: 0 }
    }
}

/// The prompt a statement is scored under: the kept sources, numbered, then the question.
fn prompt(question: &str, sources: &[String], keep: &[bool]) -> Vec<Message> {
    let mut context = String::new();
    for (i, (s, k)) in sources.iter().zip(keep).enumerate() {
        if *k {
            context.push_str(&format!("[{}] {}\n", i + 1, s));
        }
    }
    vec![Message::user(format!("Context:\n{context}\nQuestion: {question}"))]
}

/// One weight per source for `statement` as an answer to `question`.
pub async fn attribute_statement(
    model: &dyn ChatModel,
    question: &str,
    sources: &[String],
    statement: &str,
    options: &ContextCiteOptions,
) -> Result<Vec<f64>, AgentError> {
    if !model.capabilities().score_continuation {
        return Err(AgentError::Llm(LlmError::Unsupported {
            backend: model.info().backend,
            what: "continuation scoring (needed by the ContextCite scorer)".into(),
        }));
    }
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut masks = vec![vec![true; sources.len()]];
    for _ in 0..options.ablations {
        masks.push((0..sources.len()).map(|_| rng.random_bool(0.5)).collect());
    }
    let mut scores = Vec::with_capacity(masks.len());
    for mask in &masks {
        let s = model.score_continuation(&prompt(question, sources, mask), statement).await?;
        scores.push(s.total_logprob);
    }
    Ok(lasso(&masks, &scores, options.l1))
}

/// Lasso by coordinate descent on centred data: minimise
/// `1/(2n)·|y − Xw − b|² + l1·|w|₁`; returns `w`.
pub fn lasso(masks: &[Vec<bool>], y: &[f64], l1: f64) -> Vec<f64> {
    let n = masks.len();
    let p = masks.first().map(Vec::len).unwrap_or(0);
    if n == 0 || p == 0 {
        return vec![0.0; p];
    }
    let x: Vec<Vec<f64>> = masks.iter().map(|m| m.iter().map(|&b| f64::from(u8::from(b))).collect()).collect();
    let mean = |f: &dyn Fn(usize) -> f64| (0..n).map(f).sum::<f64>() / n as f64;
    let xm: Vec<f64> = (0..p).map(|j| mean(&|i| x[i][j])).collect();
    let ym = mean(&|i| y[i]);
    let xc: Vec<Vec<f64>> = x.iter().map(|row| row.iter().zip(&xm).map(|(v, m)| v - m).collect()).collect();
    let mut r: Vec<f64> = y.iter().map(|v| v - ym).collect();
    let norms: Vec<f64> = (0..p).map(|j| xc.iter().map(|row| row[j] * row[j]).sum::<f64>() / n as f64).collect();
    let mut w = vec![0.0; p];
    for _ in 0..500 {
        let mut change = 0.0f64;
        for j in 0..p {
            if norms[j] == 0.0 {
                continue;
            }
            // Correlation of feature j with the residual plus its own current part.
            let rho = xc.iter().zip(&r).map(|(row, ri)| row[j] * ri).sum::<f64>() / n as f64 + norms[j] * w[j];
            let new = rho.signum() * (rho.abs() - l1).max(0.0) / norms[j];
            let delta = new - w[j];
            if delta != 0.0 {
                for (row, ri) in xc.iter().zip(r.iter_mut()) {
                    *ri -= row[j] * delta;
                }
                w[j] = new;
                change = change.max(delta.abs());
            }
        }
        if change < 1e-9 {
            break;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Capabilities, ChatRequest, Completion, ContinuationScore, ModelInfo};
    use async_trait::async_trait;

    /// Scores a statement by which sources are present: source 1 matters a lot,
    /// source 2 a little, source 3 not at all.
    struct Planted;

    #[async_trait]
    impl ChatModel for Planted {
        fn info(&self) -> ModelInfo {
            ModelInfo::new("planted", "test")
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities { score_continuation: true, ..Default::default() }
        }
        async fn chat(&self, _: &ChatRequest) -> Result<Completion, LlmError> {
            Err(LlmError::Inference("not used".into()))
        }
        async fn score_continuation(&self, messages: &[Message], _: &str) -> Result<ContinuationScore, LlmError> {
            let c = &messages[0].content;
            let lp = -9.0 + 3.0 * f64::from(u8::from(c.contains("[1]"))) + 0.5 * f64::from(u8::from(c.contains("[2]")));
            Ok(ContinuationScore { total_logprob: lp, tokens: vec![] })
        }
    }

    #[tokio::test]
    async fn recovers_planted_source_effects() {
        let sources = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let w = attribute_statement(
            &Planted,
            "q",
            &sources,
            "s",
            &ContextCiteOptions { ablations: 64, l1: 0.001, seed: 3 },
        )
        .await
        .unwrap();
        assert!((w[0] - 3.0).abs() < 0.05, "{w:?}");
        assert!((w[1] - 0.5).abs() < 0.05, "{w:?}");
        assert!(w[2].abs() < 0.05, "{w:?}");
    }

    #[test]
    fn l1_shrinks_small_effects_to_zero() {
        let masks: Vec<Vec<bool>> = (0..16).map(|i| vec![i % 2 == 0, i % 4 < 2]).collect();
        let y: Vec<f64> =
            masks.iter().map(|m| 2.0 * f64::from(u8::from(m[0])) + 0.01 * f64::from(u8::from(m[1]))).collect();
        let w = lasso(&masks, &y, 0.05);
        assert!((w[0] - 1.8).abs() < 1e-6 && w[1] == 0.0, "soft-thresholded by l1/var = 0.2: {w:?}");
    }
}
