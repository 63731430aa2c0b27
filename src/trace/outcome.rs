//! Typed outcomes: what an experiment's item run stores as its output, one type per
//! protocol, and the claim verdicts they hold.
//!
//! The protocols (`eval`) write these and analysis reads them; both see them here, at
//! the bottom, so neither depends on the other. A stored outcome that does not match
//! these types is an error naming the run, never a silent `false` or `0`. Their JSON
//! shape is the one schema 1 wrote, so runs stored before the types existed still load.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What an experiment measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Feedback friction (Jiang et al., 2025).
    Friction,
    /// Hallucination snowballing (Zhang et al., 2023).
    Snowball,
    /// The self-correction blind spot (Tsui, 2025).
    Blindspot,
    /// The verifier itself, against gold claim labels (SciFact, Wadden et al., 2020).
    Verify,
    /// Finding the first mistake of a reasoning trace, and correcting from it (Tyen et
    /// al., 2023).
    Mistakes,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Friction => "friction",
            Protocol::Snowball => "snowball",
            Protocol::Blindspot => "blindspot",
            Protocol::Verify => "verify",
            Protocol::Mistakes => "mistakes",
        })
    }
}

/// What the evidence says about a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A tool or passage confirms it.
    Supported,
    /// A tool or passage refutes it.
    Contradicted,
    /// Checked, but nothing supports it.
    Unsupported,
    /// Not checked (no tool applies, or the tool failed).
    Unchecked,
}

/// What evidence says of a claim: a judge's label, and the gold labels of the
/// `verify` protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// The evidence supports it.
    Supported,
    /// The evidence contradicts it.
    Contradicted,
    /// The evidence does not say.
    NotEnoughInfo,
}

impl Label {
    /// In the order the model judge scores them; its prompt names them by these words.
    pub const ALL: [Label; 3] = [Label::Supported, Label::Contradicted, Label::NotEnoughInfo];

    /// The one-word answer the judge prompt asks for (`prompts/judge.j2`).
    pub fn word(self) -> &'static str {
        match self {
            Label::Supported => "true",
            Label::Contradicted => "false",
            Label::NotEnoughInfo => "unknown",
        }
    }

    /// The claim verdict it gives.
    pub fn verdict(self) -> Verdict {
        match self {
            Label::Supported => Verdict::Supported,
            Label::Contradicted => Verdict::Contradicted,
            Label::NotEnoughInfo => Verdict::Unsupported,
        }
    }

    /// The label a free-text reply gives: the earliest of true/supported,
    /// false/contradicted, unknown/not enough info; `None` if it names none.
    pub fn parse(reply: &str) -> Option<Label> {
        let text = reply.to_lowercase();
        let words: [(&str, Label); 8] = [
            ("true", Label::Supported),
            ("support", Label::Supported),
            ("yes", Label::Supported),
            ("false", Label::Contradicted),
            ("contradict", Label::Contradicted),
            ("no", Label::Contradicted),
            ("unknown", Label::NotEnoughInfo),
            ("not enough", Label::NotEnoughInfo),
        ];
        words
            .iter()
            .filter_map(|(w, l)| {
                text.match_indices(w)
                    .find(|(at, _)| {
                        // Whole words only ("no" is not "not", "know" or "unknown").
                        let before = text[..*at].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
                        let after = text[at + w.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric());
                        before && (after || *w == "support" || *w == "contradict")
                    })
                    .map(|(at, _)| (at, *l))
            })
            .min_by_key(|(at, _)| *at)
            .map(|(_, l)| l)
    }
}

/// Which judge decided a claim, and how it scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeKind {
    /// An exact tool.
    Tool,
    /// A model, from the log-probabilities of the three label words.
    ModelLogprobs,
    /// A model, from sampled votes (backends without scoring).
    ModelVotes,
    /// The lexical baseline: share of the claim's content words in the best passage.
    Lexical,
}

/// The graded outcome of one experiment item, tagged by its protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum ItemOutcome {
    /// A feedback-friction item.
    Friction(FrictionOutcome),
    /// A snowballing item.
    Snowball(SnowballOutcome),
    /// A blind-spot item.
    Blindspot(BlindspotOutcome),
    /// A verifier item.
    Verify(VerifyOutcome),
    /// A mistake-finding item.
    Mistakes(super::MistakesOutcome),
}

impl ItemOutcome {
    /// The protocol that produced it.
    pub fn protocol(&self) -> Protocol {
        match self {
            ItemOutcome::Friction(_) => Protocol::Friction,
            ItemOutcome::Snowball(_) => Protocol::Snowball,
            ItemOutcome::Blindspot(_) => Protocol::Blindspot,
            ItemOutcome::Verify(_) => Protocol::Verify,
            ItemOutcome::Mistakes(_) => Protocol::Mistakes,
        }
    }

    /// The item's id in its dataset.
    pub fn item_id(&self) -> &str {
        match self {
            ItemOutcome::Friction(o) => &o.item_id,
            ItemOutcome::Snowball(o) => &o.item_id,
            ItemOutcome::Blindspot(o) => &o.item_id,
            ItemOutcome::Verify(o) => &o.item_id,
            ItemOutcome::Mistakes(o) => &o.item_id,
        }
    }

    /// The headline grade: friction's last answer, snowball's stance, the blind spot's
    /// own-reasoning condition, the verifier's label, the critic's mistake location.
    pub fn correct(&self) -> bool {
        match self {
            ItemOutcome::Friction(o) => o.correct,
            ItemOutcome::Snowball(o) => o.correct,
            ItemOutcome::Blindspot(o) => o.correct,
            ItemOutcome::Verify(o) => o.correct,
            ItemOutcome::Mistakes(o) => o.correct,
        }
    }
}

/// Feedback friction: every answer round of one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrictionOutcome {
    /// The item's id.
    pub item_id: String,
    /// The gold answer.
    pub gold: String,
    /// The answers, in order; the item stops once right.
    pub rounds: Vec<FrictionRound>,
    /// The spec's round limit.
    pub max_rounds: u32,
    /// Whether the last answer is right.
    pub correct: bool,
}

/// One answer of a friction item, and the feedback that followed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrictionRound {
    /// 1-based round number.
    pub round: u32,
    /// The solver's whole reply.
    pub text: String,
    /// The answer read from it; `None` when it states none.
    pub answer: Option<String>,
    /// Whether that answer is right.
    pub correct: bool,
    /// The sampling temperature of the round.
    pub temperature: f32,
    /// Whether a repeat was rejected and the answer resampled.
    pub resampled: bool,
    /// The feedback given after this answer (masked); `None` when none followed.
    /// Binary feedback is the empty string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
    /// Whether the feedback writer stated the gold answer (it was masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaked: Option<bool>,
}

/// Snowballing: the answer, its supporting claims, and the false ones asked back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnowballOutcome {
    /// The item's id.
    pub item_id: String,
    /// The dataset the item came from (`primality`, `senator`, `graph`).
    pub dataset: String,
    /// The gold answer (`yes` or `no`).
    pub gold: String,
    /// The model's answer.
    pub text: String,
    /// The yes/no it takes; `None` when it takes none.
    pub stance: Option<String>,
    /// Whether the stance is the gold answer.
    pub correct: bool,
    /// Supporting claims the tool-checker settled.
    pub claims: Vec<SettledClaim>,
    /// False supporting claims of a wrong answer, each asked back in a fresh context.
    pub false_claims: Vec<AskedBackClaim>,
    /// Controls: a true claim asked back the same way (the answer's own first
    /// tool-supported claim, else the true counterpart of its first refuted one), so a
    /// model that calls everything false is not taken for one that knows its errors.
    /// Empty in experiments run without controls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub true_claims: Vec<AskedBackClaim>,
}

/// A supporting claim with the exact tool's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettledClaim {
    /// The claim as written.
    pub text: String,
    /// The tool's verdict.
    pub verdict: Verdict,
    /// The tool that settled it.
    pub tool: Option<String>,
}

/// A false claim asked back alone, and what the model said of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AskedBackClaim {
    /// The claim.
    pub text: String,
    /// The model's reply.
    pub reply: String,
    /// The yes/no (true/false) the reply takes; `None` when it takes none.
    pub judged: Option<String>,
    /// Whether the model rejected its own claim.
    pub rejected: bool,
    /// A control made from the answer's refuted claim (negated, or with the exact
    /// value), not a claim the answer states.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counterpart: bool,
}

/// The blind spot: one erroneous prefix under the three conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlindspotOutcome {
    /// The item's id.
    pub item_id: String,
    /// The gold answer.
    pub gold: String,
    /// Index of the first wrong step.
    pub mistake_index: usize,
    /// The reasoning shown: the steps up to and including the mistake.
    pub prefix: String,
    /// Each condition's result.
    pub conditions: BlindspotConditions,
    /// Whether the model corrected its own reasoning (the `own` condition).
    pub correct: bool,
}

/// The verifier on one gold-labelled claim: what it retrieved and how it judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyOutcome {
    /// The item's id.
    pub item_id: String,
    /// The claim.
    pub claim: String,
    /// The gold label.
    pub gold: Label,
    /// The judge's label.
    pub predicted: Label,
    /// The judge's score in [0, 1].
    pub score: f64,
    /// Which judge decided.
    pub judge: JudgeKind,
    /// Documents of the passages the judge saw, in rank order.
    pub retrieved_docs: Vec<String>,
    /// The documents holding the gold evidence (empty for "not enough info").
    pub gold_docs: Vec<String>,
    /// Whether the label is the gold one.
    pub correct: bool,
}

/// The three conditions of a blind-spot item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlindspotConditions {
    /// The reasoning given as the user's attempt.
    pub user: ConditionResult,
    /// The reasoning as the model's own prefilled answer.
    pub own: ConditionResult,
    /// The model's own reasoning followed by "Wait,".
    pub own_wait: ConditionResult,
}

/// What the model made of the reasoning in one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionResult {
    /// The whole text graded (prefix and continuation for the own conditions).
    pub text: String,
    /// The model's continuation of a prefilled turn; `None` in the user condition.
    pub continuation: Option<String>,
    /// The final answer read from the text.
    pub answer: Option<String>,
    /// Whether it is the gold answer.
    pub correct: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_1_outcomes_load_and_round_trip() {
        // Shapes as schema 1 wrote them with `json!`, keys in any order.
        let friction = serde_json::json!({
            "protocol": "friction", "item_id": "m:1", "gold": "88", "max_rounds": 2, "correct": false,
            "rounds": [
                {"round": 1, "text": "So 86", "answer": "86", "correct": false, "temperature": 0.0,
                 "resampled": false, "feedback": "Check step 2.", "leaked": false},
                {"round": 2, "text": "no idea", "answer": null, "correct": false, "temperature": 0.5, "resampled": false}
            ]
        });
        let outcome: ItemOutcome = serde_json::from_value(friction.clone()).unwrap();
        assert_eq!((outcome.protocol(), outcome.item_id(), outcome.correct()), (Protocol::Friction, "m:1", false));
        let ItemOutcome::Friction(f) = &outcome else { panic!("not friction") };
        assert_eq!(f.rounds[0].feedback.as_deref(), Some("Check step 2."));
        assert_eq!((f.rounds[1].answer.as_ref(), f.rounds[1].feedback.as_ref()), (None, None));
        assert_eq!(serde_json::to_value(&outcome).unwrap(), friction);
        let blindspot = serde_json::json!({
            "protocol": "blindspot", "item_id": "b:0", "gold": "4", "mistake_index": 1, "prefix": "2+2=5",
            "correct": true,
            "conditions": {
                "own": {"text": "2+2=5 no, 4", "continuation": " no, 4", "answer": "4", "correct": true},
                "own_wait": {"text": "t", "continuation": "c", "answer": null, "correct": false},
                "user": {"text": "4", "continuation": null, "answer": "4", "correct": true}
            }
        });
        let outcome: ItemOutcome = serde_json::from_value(blindspot.clone()).unwrap();
        assert_eq!(serde_json::to_value(&outcome).unwrap(), blindspot);
    }

    #[test]
    fn a_mismatched_outcome_is_an_error_not_a_default() {
        let renamed = serde_json::json!({
            "protocol": "snowball", "item_id": "p:1", "dataset": "primality", "gold": "yes", "text": "No",
            "stance": "no", "is_correct": false, "claims": [], "false_claims": []
        });
        let err = serde_json::from_value::<ItemOutcome>(renamed).unwrap_err().to_string();
        assert!(err.contains("correct"), "{err}");
        let unknown = serde_json::json!({ "protocol": "verify", "item_id": "x" });
        assert!(serde_json::from_value::<ItemOutcome>(unknown).is_err());
    }
}
