//! Judges: does the evidence support a claim, contradict it, or not say?
//!
//! [`Entailment`] is the seam; [`ModelJudge`] asks a model (`agents/judge.toml`, which
//! may name its own, stronger model) and [`LexicalJudge`] is the word-overlap baseline.
//! The exact tools judge what they settle; the orchestrator takes their verdicts first.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{
    attributor::lexical_support,
    calibration::{self, LabelLogprobs},
    AgentError, AgentSet,
};
use crate::llm::{ChatModel, ChatRequest, Message, Purpose, SamplingParams};
pub use crate::trace::{JudgeKind, Label};

/// Which judge decides claims against evidence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeChoice {
    /// The model judge (`agents/judge.toml`).
    #[default]
    Model,
    /// The lexical baseline.
    Lexical,
}

impl JudgeChoice {
    /// This choice's judge over `model` (used by the model judge only), its label
    /// log-probabilities corrected by `offsets` (see [`calibration`]).
    pub fn judge<'a>(
        self,
        agents: &'a AgentSet,
        model: &'a dyn ChatModel,
        seed: u64,
        offsets: [f64; 3],
    ) -> Box<dyn Entailment + 'a> {
        match self {
            JudgeChoice::Model => Box::new(ModelJudge::new(agents, model, seed).calibrated(offsets)),
            JudgeChoice::Lexical => {
                Box::new(LexicalJudge { min_support: agents.attributor.min_support.unwrap_or(0.5) })
            }
        }
    }
}

/// A judge's decision on one claim.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// The label.
    pub label: Label,
    /// Its strength in [0, 1]: the label's probability (log-probabilities), its share
    /// of the votes, or the lexical support.
    pub score: f64,
    /// Who decided.
    pub judge: JudgeKind,
    /// The label words' log-probabilities before calibration (true, false, unknown),
    /// where the judge read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<LabelLogprobs>,
}

/// Decides whether evidence texts support, contradict or do not settle a claim.
#[async_trait]
pub trait Entailment: Send + Sync {
    /// Judge `claim` against `evidence` (passages or sampled answers).
    async fn judge(&self, claim: &str, evidence: &[String]) -> Result<Judgement, AgentError>;
}

/// The lexical baseline: supported when some passage holds at least `min_support` of
/// the claim's content words; it never finds a contradiction.
#[derive(Debug, Clone, Copy)]
pub struct LexicalJudge {
    /// Share of content words needed.
    pub min_support: f64,
}

#[async_trait]
impl Entailment for LexicalJudge {
    async fn judge(&self, claim: &str, evidence: &[String]) -> Result<Judgement, AgentError> {
        let best = evidence.iter().map(|e| lexical_support(claim, e)).fold(0.0, f64::max);
        let label = if best >= self.min_support { Label::Supported } else { Label::NotEnoughInfo };
        Ok(Judgement { label, score: best, judge: JudgeKind::Lexical, logprobs: None })
    }
}

/// A model judge (`agents/judge.toml`, `prompts/judge.j2`). Where the backend scores
/// continuations (the local model) it compares the log-probabilities of the three label
/// words (one scoring call each); where it returns top log-probabilities (OpenAI-style
/// servers) it reads them off the first generated token (one call); elsewhere, or when
/// a server returns none, it takes the majority of `votes` replies. Label
/// log-probabilities are corrected by the judge's calibration offsets, if any.
pub struct ModelJudge<'a> {
    agents: &'a AgentSet,
    model: &'a dyn ChatModel,
    seed: u64,
    /// Added to the label log-probabilities before the label is chosen.
    offsets: [f64; 3],
}

/// What the judge's model gave for a prompt.
enum Scores {
    /// The label words' log-probabilities.
    Logprobs(LabelLogprobs),
    /// A server asked for top log-probabilities returned none: its reply's label is
    /// the first vote.
    FirstVote(Label),
    /// The backend gives no probabilities: votes decide.
    VotesOnly,
}

impl<'a> ModelJudge<'a> {
    /// A judge asking `model` (a recording one, so each call is a trace step).
    pub fn new(agents: &'a AgentSet, model: &'a dyn ChatModel, seed: u64) -> Self {
        Self { agents, model, seed, offsets: [0.0; 3] }
    }

    /// This judge with its label log-probabilities corrected by `offsets`.
    pub fn calibrated(self, offsets: [f64; 3]) -> Self {
        Self { offsets, ..self }
    }

    /// The judge prompt for `claim` against `evidence`.
    fn messages(&self, claim: &str, evidence: &[String]) -> Result<Vec<Message>, AgentError> {
        let prompt = self.agents.render(
            self.agents.judge.prompt.as_deref().unwrap_or("judge.j2"),
            minijinja::context! { claim => claim, evidence => evidence },
        )?;
        Ok(vec![Message::user(prompt)])
    }

    /// The raw label log-probabilities of `claim` against `evidence`, where the model
    /// gives them (`None` where it only samples).
    pub async fn label_logprobs(&self, claim: &str, evidence: &[String]) -> Result<Option<LabelLogprobs>, AgentError> {
        Ok(match self.scores(self.messages(claim, evidence)?).await? {
            Scores::Logprobs(l) => Some(l),
            Scores::FirstVote(_) | Scores::VotesOnly => None,
        })
    }

    async fn scores(&self, messages: Vec<Message>) -> Result<Scores, AgentError> {
        let caps = self.model.capabilities();
        if caps.score_continuation {
            // One call for the three words: a backend that can decodes the prompt once.
            let words = Label::ALL.map(Label::word);
            let scores = self.model.score_continuations(&messages, &words).await?;
            let mut logprobs = [None; 3];
            for (slot, score) in logprobs.iter_mut().zip(&scores) {
                *slot = score.total_logprob.is_finite().then_some(score.total_logprob);
            }
            Ok(Scores::Logprobs(logprobs))
        } else if caps.logprobs {
            self.top_logprobs(messages).await
        } else {
            Ok(Scores::VotesOnly)
        }
    }

    /// One greedy call asking for the top alternatives of the first token: the label
    /// words' log-probabilities among them. A server that returns none gives its
    /// reply's label as the first vote instead.
    async fn top_logprobs(&self, messages: Vec<Message>) -> Result<Scores, AgentError> {
        let cfg = &self.agents.judge;
        let params = SamplingParams {
            max_tokens: cfg.max_tokens.unwrap_or(8),
            logprobs: true,
            top_logprobs: 5,
            seed: Some(self.seed),
            ..Default::default()
        };
        let request = ChatRequest::new(messages).with_params(params).for_purpose(Purpose::Judge);
        let reply = self.model.chat(&request).await?;
        let first = reply.choices.first().and_then(|c| c.logprobs.as_ref()).and_then(|l| l.first());
        let mut best: LabelLogprobs = [None; 3];
        for alt in first.map(|t| t.top.as_slice()).unwrap_or_default() {
            let word = alt.token.trim().to_lowercase();
            if let Some(i) = Label::ALL.iter().position(|l| l.word() == word) {
                best[i] = Some(best[i].map_or(alt.logprob, |b: f64| b.max(alt.logprob)));
            }
        }
        if best.iter().any(|b| b.is_some_and(f64::is_finite)) {
            return Ok(Scores::Logprobs(best));
        }
        Ok(Scores::FirstVote(Label::parse(reply.text()).unwrap_or(Label::NotEnoughInfo)))
    }

    async fn by_votes(&self, messages: Vec<Message>, first: Option<Label>) -> Result<Judgement, AgentError> {
        let cfg = &self.agents.judge;
        let votes = cfg.votes.unwrap_or(3).max(1);
        // One vote is a greedy answer; several are samples.
        let temperature = if votes == 1 { 0.0 } else { cfg.temperature.unwrap_or(0.7) };
        let mut tally = [0u32; 3];
        if let Some(label) = first {
            tally[Label::ALL.iter().position(|l| *l == label).unwrap_or(2)] += 1;
        }
        for i in u32::from(first.is_some())..votes {
            let params = SamplingParams {
                temperature,
                max_tokens: cfg.max_tokens.unwrap_or(8),
                seed: Some(self.seed.wrapping_add(u64::from(i))),
                ..Default::default()
            };
            let request = ChatRequest::new(messages.clone()).with_params(params).for_purpose(Purpose::Judge);
            let reply = self.model.chat(&request).await?;
            let label = Label::parse(reply.text()).unwrap_or(Label::NotEnoughInfo);
            tally[Label::ALL.iter().position(|l| *l == label).unwrap_or(2)] += 1;
        }
        // Most votes; a tie goes to "not enough info", then to "contradicted".
        let most = tally.iter().copied().max().unwrap_or(0);
        let best = [2usize, 1, 0].into_iter().find(|i| tally[*i] == most).unwrap_or(2);
        let score = f64::from(tally[best]) / f64::from(votes);
        Ok(Judgement { label: Label::ALL[best], score, judge: JudgeKind::ModelVotes, logprobs: None })
    }
}

#[async_trait]
impl Entailment for ModelJudge<'_> {
    async fn judge(&self, claim: &str, evidence: &[String]) -> Result<Judgement, AgentError> {
        if evidence.is_empty() {
            // Nothing to judge against: no call.
            let judge = JudgeKind::ModelVotes;
            return Ok(Judgement { label: Label::NotEnoughInfo, score: 1.0, judge, logprobs: None });
        }
        let messages = self.messages(claim, evidence)?;
        match self.scores(messages.clone()).await? {
            Scores::Logprobs(logprobs) => {
                // Every label unscoreable: the judge cannot say.
                let (label, score) =
                    calibration::decide(&logprobs, &self.offsets).unwrap_or((Label::NotEnoughInfo, 0.0));
                Ok(Judgement { label, score, judge: JudgeKind::ModelLogprobs, logprobs: Some(logprobs) })
            }
            Scores::FirstVote(label) => self.by_votes(messages, Some(label)).await,
            Scores::VotesOnly => self.by_votes(messages, None).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_from_free_text() {
        assert_eq!(Label::parse("True."), Some(Label::Supported));
        assert_eq!(Label::parse("false, the passage says otherwise"), Some(Label::Contradicted));
        assert_eq!(Label::parse("Unknown: not stated."), Some(Label::NotEnoughInfo));
        assert_eq!(Label::parse("The passages support it"), Some(Label::Supported));
        assert_eq!(Label::parse("It is not enough info, though some support"), Some(Label::NotEnoughInfo));
        assert_eq!(Label::parse("I know nothing"), None, "`no` inside a word is not a vote");
        assert_eq!(Label::parse(""), None);
    }

    /// Scores each label word with a planted log-probability; chat is never called.
    struct Planted([f64; 3]);

    #[async_trait]
    impl ChatModel for Planted {
        fn info(&self) -> crate::llm::ModelInfo {
            crate::llm::ModelInfo::new("planted", "test")
        }
        fn capabilities(&self) -> crate::llm::Capabilities {
            crate::llm::Capabilities { score_continuation: true, ..Default::default() }
        }
        async fn chat(&self, _: &ChatRequest) -> Result<crate::llm::Completion, crate::llm::LlmError> {
            Err(crate::llm::LlmError::Replay("the logprob judge must not generate".into()))
        }
        async fn score_continuation(
            &self,
            messages: &[Message],
            continuation: &str,
        ) -> Result<crate::llm::ContinuationScore, crate::llm::LlmError> {
            assert!(messages[0].content.contains("Claim: The Moon is made of cheese."));
            let i = Label::ALL.iter().position(|l| l.word() == continuation).unwrap();
            Ok(crate::llm::ContinuationScore { total_logprob: self.0[i], tokens: vec![] })
        }
    }

    #[tokio::test]
    async fn the_model_judge_reads_label_probabilities_where_it_can_score() {
        let agents = AgentSet::builtin().unwrap();
        // log-probabilities of true / false / unknown: softmax gives 0.1 / 0.7 / 0.2.
        let model = Planted([0.1f64.ln(), 0.7f64.ln(), 0.2f64.ln()]);
        let judge = ModelJudge::new(&agents, &model, 0);
        let j = judge.judge("The Moon is made of cheese.", &["The Moon is rock.".into()]).await.unwrap();
        assert_eq!((j.label, j.judge), (Label::Contradicted, JudgeKind::ModelLogprobs));
        assert!((j.score - 0.7).abs() < 1e-9, "{}", j.score);
    }

    #[tokio::test]
    async fn the_lexical_judge_never_contradicts() {
        let j = LexicalJudge { min_support: 0.5 };
        let evidence = vec!["The Moon is made of rock and dust.".to_string()];
        let moon = j.judge("The Moon is made of rock.", &evidence).await.unwrap();
        assert_eq!((moon.label, moon.judge), (Label::Supported, JudgeKind::Lexical));
        let cheese = j.judge("Cheese is a dairy product from milk.", &evidence).await.unwrap();
        assert_eq!(cheese.label, Label::NotEnoughInfo);
    }
}
