//! The named strategies and the anti-friction options usable with any loop.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A verify-and-revise policy over the agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// One answer, no review (claims are still checked and reported).
    Single,
    /// The model critiques and revises its own answer, without tools (Madaan et al., 2023).
    SelfRefine,
    /// CRITIC (Gou et al., 2023): exact tools check the claims, the critique sees their
    /// results, the solver revises.
    Critic,
    /// If-or-Else: the critique prompt says to keep a confident answer, else revise.
    Ioe,
    /// Append "Wait" to the model's own answer and let it continue (Tsui, 2025).
    Wait,
    /// Regenerate from the earliest wrong step the critic finds (Tyen et al., 2023).
    Backtrack,
    /// Draw `candidates` answers and keep the one the verifier supports best (fewest
    /// contradicted claims, then the largest share supported, then the model's own
    /// likelihood where the backend gives it, then the first).
    BestOfN,
}

impl Strategy {
    /// Every strategy, for help texts and tests.
    pub const ALL: [Strategy; 7] = [
        Strategy::Single,
        Strategy::SelfRefine,
        Strategy::Critic,
        Strategy::Ioe,
        Strategy::Wait,
        Strategy::Backtrack,
        Strategy::BestOfN,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Single => "single",
            Strategy::SelfRefine => "self-refine",
            Strategy::Critic => "critic",
            Strategy::Ioe => "ioe",
            Strategy::Wait => "wait",
            Strategy::Backtrack => "backtrack",
            Strategy::BestOfN => "best-of-n",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A strategy name that is not one of [`Strategy::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy {0:?} (one of: single, self-refine, critic, ioe, wait, backtrack, best-of-n)")]
pub struct UnknownStrategy(pub String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL.into_iter().find(|st| st.name() == s).ok_or_else(|| UnknownStrategy(s.to_string()))
    }
}

fn default_candidates() -> u32 {
    super::best_of_n::DEFAULT_CANDIDATES
}

/// Limits and anti-friction options of a loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopOptions {
    /// The policy.
    pub strategy: Strategy,
    /// Revision rounds at most.
    pub rounds: u32,
    /// Temperature added to the solver's each round (Jiang et al. use +0.15).
    pub temperature_step: f32,
    /// Cap of the scheduled temperature.
    pub temperature_cap: f32,
    /// Tell the solver which answers were already rejected, and resample once if it repeats one.
    pub reject_repeats: bool,
    /// Model calls the verify-and-revise loop may make (drafts, critiques, revisions);
    /// the run's recording models refuse calls past it. Citation scoring is counted in
    /// the outcome but not limited.
    pub max_calls: u32,
    /// Tokens (prompt + completion) the loop may spend; 0 = no limit. A run budget,
    /// unlike an agent's `max_tokens`, which limits one generation.
    #[serde(alias = "max_tokens")]
    pub token_budget: u64,
    /// Seed for sampled calls; each call derives its own from it.
    pub seed: u64,
    /// Answers drawn by `best-of-n` (the others ignore it).
    #[serde(default = "default_candidates")]
    pub candidates: u32,
    /// Milliseconds the verify-and-revise loop may take; no call starts after that and
    /// the best answer so far is kept (`None` = no limit). Verification of the final
    /// answer is not cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_budget_ms: Option<u64>,
}

impl Default for LoopOptions {
    fn default() -> Self {
        Self {
            strategy: Strategy::Single,
            rounds: 2,
            temperature_step: 0.0,
            temperature_cap: 1.0,
            reject_repeats: false,
            max_calls: 24,
            token_budget: 0,
            seed: 0,
            candidates: default_candidates(),
            time_budget_ms: None,
        }
    }
}
