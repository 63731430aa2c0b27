//! The figures the papers published for each protocol's headline metrics, shown beside
//! ours so a run on any model says at once whether an effect reproduces. Figures and
//! models as `../shared/docs/research.md` gives them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::trace::Protocol;

/// A published figure for one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// The figure(s), with the model(s) they were measured on.
    pub figure: String,
    /// The paper.
    pub source: String,
}

fn entry(metric: &str, figure: &str, source: &str) -> (String, Published) {
    (metric.to_string(), Published { figure: figure.into(), source: source.into() })
}

/// The published figures for `protocol`'s metrics, by metric name.
pub fn published(protocol: Protocol) -> BTreeMap<String, Published> {
    const ZHANG: &str = "Zhang, Press, Merrill, Liu, Smith (2023), How Language Model Hallucinations Can Snowball";
    const TSUI: &str = "Tsui (2025), Self-Correction Bench";
    const JIANG: &str = "Jiang et al. (2025), Feedback Friction";
    const TYEN: &str = "Tyen et al. (2023), LLMs cannot find reasoning errors, but can correct them (arXiv 2311.08516)";
    match protocol {
        Protocol::Snowball => [
            entry("snowball_rate", "0.67 (ChatGPT), 0.87 (GPT-4)", ZHANG),
            entry("false_claim_rejection", "0.67 (ChatGPT), 0.87 (GPT-4); no true-claim control", ZHANG),
        ]
        .into_iter()
        .collect(),
        Protocol::Blindspot => [
            entry("blind_spot_rate", "0.645 (average of 14 models)", TSUI),
            entry("blind_spot_rate_wait", "\"Wait\" reduced blind spots by 89.3% on average (14 models)", TSUI),
        ]
        .into_iter()
        .collect(),
        Protocol::Friction => [entry(
            "friction_rate",
            "models plateau below target accuracy even with near-perfect feedback (no single figure)",
            JIANG,
        )]
        .into_iter()
        .collect(),
        Protocol::Mistakes => [
            entry(
                "location_accuracy",
                "GPT-4-Turbo, GPT-4 and GPT-3.5-Turbo, 3-shot, generally struggle to find the first mistake \
                 (the paper's Table 4 has the per-task figures)",
                TYEN,
            ),
            entry(
                "corrected_share_simulated",
                "backtracking helps even when the mistake locator is only 60-70% accurate",
                TYEN,
            ),
        ]
        .into_iter()
        .collect(),
        _ => BTreeMap::new(),
    }
}
