//! The mistake-finding protocol's outcome (Tyen et al., 2023; BIG-Bench Mistake): where
//! the critic located the first mistake of a reasoning trace, and what backtracking
//! from a location made of the trace.

use serde::{Deserialize, Serialize};

/// Where a critic says the first mistake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "step", rename_all = "snake_case")]
pub enum Location {
    /// Every step is correct.
    NoMistake,
    /// The first wrong step, as numbered in the trace.
    Step(usize),
    /// A step number the trace does not have (it says there is a mistake, but nowhere).
    PastTheEnd(usize),
    /// Neither a step nor "no mistake" could be read.
    Unreadable,
}

impl Location {
    /// The location a gold `mistake_index` gives: its step, or no mistake for `None`.
    pub fn of_gold(mistake_index: Option<usize>) -> Self {
        mistake_index.map_or(Location::NoMistake, Location::Step)
    }

    /// The step to backtrack from, when the location names one the trace has.
    pub fn step(self) -> Option<usize> {
        match self {
            Location::Step(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this location says the trace has a mistake (a step out of range does too).
    pub fn says_mistake(self) -> Option<bool> {
        match self {
            Location::NoMistake => Some(false),
            Location::Step(_) | Location::PastTheEnd(_) => Some(true),
            Location::Unreadable => None,
        }
    }
}

/// Where a backtracking location came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationSource {
    /// The annotators' `mistake_index`.
    Gold,
    /// The critic's reply under test.
    Critic,
    /// A simulated locator, right with the spec's `simulated_location_accuracy`.
    Simulated,
}

impl LocationSource {
    /// Every source, in report order.
    pub const ALL: [LocationSource; 3] = [LocationSource::Gold, LocationSource::Critic, LocationSource::Simulated];

    /// The name used in metric names.
    pub fn name(self) -> &'static str {
        match self {
            LocationSource::Gold => "gold",
            LocationSource::Critic => "critic",
            LocationSource::Simulated => "simulated",
        }
    }
}

/// One trace under the mistakes protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MistakesOutcome {
    /// The item's id.
    pub item_id: String,
    /// The task (the dataset file's stem), for per-task metrics.
    pub task: String,
    /// The gold answer.
    pub gold: String,
    /// Steps in the trace.
    pub steps: usize,
    /// The annotated first mistake; `None` when the trace has none.
    pub mistake_index: Option<usize>,
    /// The critic's whole reply.
    pub critic_reply: String,
    /// The location read from it.
    pub critic_location: Location,
    /// The original trace's final answer, as read from its steps.
    pub original_answer: Option<String>,
    /// Whether that answer is the gold one.
    pub original_correct: bool,
    /// Backtracking from each location source (empty when the spec turns it off).
    #[serde(default)]
    pub backtracks: Vec<Backtrack>,
    /// Whether the critic's location is exactly the gold one (the paper's score).
    pub correct: bool,
}

impl MistakesOutcome {
    /// The backtrack from `source`, when it ran.
    pub fn backtrack(&self, source: LocationSource) -> Option<&Backtrack> {
        self.backtracks.iter().find(|b| b.source == source)
    }
}

/// The trace after backtracking from one location: kept as it was when the location
/// says "no mistake" (or names no step of the trace), else regenerated from the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backtrack {
    /// Where the location came from.
    pub source: LocationSource,
    /// The location.
    pub location: Location,
    /// Whether the trace was regenerated (false: the original answer stands).
    pub regenerated: bool,
    /// The regenerated step (the first sample unlike the original step), when regenerated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_step: Option<String>,
    /// Samples drawn for the step (the paper draws up to 8 and keeps one unlike the original).
    #[serde(default)]
    pub samples: u32,
    /// The whole trace after backtracking.
    pub text: String,
    /// Its final answer.
    pub answer: Option<String>,
    /// Whether that answer is the gold one.
    pub correct: bool,
}
