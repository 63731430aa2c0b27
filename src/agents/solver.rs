//! The solver: drafts an answer (optionally from numbered passages) and revises it.

use serde_json::json;

use super::{AgentError, AgentSet};
use crate::{
    corpus::Passage,
    llm::{ChatModel, ChatRequest, Completion, Message, Purpose, SamplingParams},
    trace::RunRecorder,
};

fn params(agents: &AgentSet, temperature: Option<f32>, seed: Option<u64>) -> SamplingParams {
    SamplingParams {
        temperature: temperature.or(agents.solver.temperature).unwrap_or(0.0),
        max_tokens: agents.solver.max_tokens.unwrap_or(384),
        seed,
        ..Default::default()
    }
}

/// The solver's prompt for `question` with `passages` as numbered context.
pub fn question_prompt(agents: &AgentSet, question: &str, passages: &[Passage]) -> Result<String, AgentError> {
    agents.render(
        agents.solver.prompt.as_deref().unwrap_or("solver.j2"),
        minijinja::context! { question => question, passages => passages },
    )
}

/// `history` (the conversation before the question, as a client sent it) then `prompt`.
fn after(history: &[Message], prompt: String) -> Vec<Message> {
    let mut messages = history.to_vec();
    messages.push(Message::user(prompt));
    messages
}

/// A first answer to `question`, after the conversation `history`.
pub async fn draft(
    agents: &AgentSet,
    model: &dyn ChatModel,
    history: &[Message],
    question: &str,
    passages: &[Passage],
    seed: Option<u64>,
) -> Result<Completion, AgentError> {
    let prompt = question_prompt(agents, question, passages)?;
    let request =
        ChatRequest::new(after(history, prompt)).with_params(params(agents, None, seed)).for_purpose(Purpose::Answer);
    Ok(model.chat(&request).await?)
}

/// Another answer to `question` at `temperature`, drawn to check the first one's
/// claims against (self-consistency, Manakul et al., 2023).
pub async fn sample(
    agents: &AgentSet,
    model: &dyn ChatModel,
    history: &[Message],
    question: &str,
    temperature: f32,
    seed: u64,
) -> Result<Completion, AgentError> {
    let prompt = question_prompt(agents, question, &[])?;
    let request = ChatRequest::new(after(history, prompt))
        .with_params(params(agents, Some(temperature), Some(seed)))
        .for_purpose(Purpose::Sample);
    Ok(model.chat(&request).await?)
}

/// One answer drawn among several (`best-of-n`).
#[derive(Debug, Clone, Copy)]
pub struct Draw<'a> {
    /// The conversation before the question.
    pub history: &'a [Message],
    /// The question.
    pub question: &'a str,
    /// Corpus passages given as context.
    pub passages: &'a [Passage],
    /// Sampling temperature (above 0, so the draws differ).
    pub temperature: f32,
    /// This draw's seed.
    pub seed: u64,
    /// Ask for per-token log-probabilities (the tie-break by likelihood).
    pub logprobs: bool,
}

/// A candidate answer to `draw.question` (`best-of-n`).
pub async fn candidate(agents: &AgentSet, model: &dyn ChatModel, draw: Draw<'_>) -> Result<Completion, AgentError> {
    let prompt = question_prompt(agents, draw.question, draw.passages)?;
    let mut params = params(agents, Some(draw.temperature), Some(draw.seed));
    params.logprobs = draw.logprobs;
    let request = ChatRequest::new(after(draw.history, prompt)).with_params(params).for_purpose(Purpose::Candidate);
    Ok(model.chat(&request).await?)
}

/// What a revision starts from.
#[derive(Debug, Clone, Copy)]
pub struct RevisionInput<'a> {
    /// The conversation before the question.
    pub history: &'a [Message],
    /// The question.
    pub question: &'a str,
    /// The answer to revise.
    pub draft: &'a str,
    /// Problems found by the critic and the tools.
    pub problems: &'a [String],
    /// Answers already rejected (anti-friction option).
    pub rejected: &'a [String],
}

/// A revision of the draft given the problems found and answers already rejected.
pub async fn revise(
    agents: &AgentSet,
    model: &dyn ChatModel,
    input: RevisionInput<'_>,
    temperature: f32,
    seed: Option<u64>,
) -> Result<Completion, AgentError> {
    let RevisionInput { history, question, draft, problems, rejected } = input;
    let prompt = agents.render(
        agents.solver.revise_prompt.as_deref().unwrap_or("revise.j2"),
        minijinja::context! { question => question, draft => draft, problems => problems, rejected => rejected },
    )?;
    let request = ChatRequest::new(after(history, prompt))
        .with_params(params(agents, Some(temperature), seed))
        .for_purpose(Purpose::Revise);
    Ok(model.chat(&request).await?)
}

/// Continue the model's own answer to `question` from `prefix`: used by the `wait`
/// strategy ("Wait" appended) and `backtrack` (regenerate from a step).
#[allow(clippy::too_many_arguments)]
pub async fn continue_from(
    agents: &AgentSet,
    model: &dyn ChatModel,
    recorder: &RunRecorder,
    history: &[Message],
    question: &str,
    prefix: &str,
    temperature: f32,
    seed: Option<u64>,
) -> Result<Completion, AgentError> {
    let params = params(agents, Some(temperature), seed);
    continue_turn(agents, model, recorder, after(history, question.to_string()), prefix, params).await
}

/// The model's continuation of `prefix`, written as its own reply after `messages`.
///
/// A backend that continues a prefilled assistant turn ([`crate::llm::Capabilities`]'s
/// `prefill`) gets one. Any other would answer the turn afresh, and gluing that answer
/// onto the prefix would be wrong, so there the turn is emulated: the model is asked
/// (`prompts/continue.j2`) to write what comes next, and a `prefill_emulated` event
/// records that it was.
pub async fn continue_turn(
    agents: &AgentSet,
    model: &dyn ChatModel,
    recorder: &RunRecorder,
    mut messages: Vec<Message>,
    prefix: &str,
    params: SamplingParams,
) -> Result<Completion, AgentError> {
    if model.capabilities().prefill {
        messages.push(Message::assistant(prefix));
    } else {
        messages.push(Message::user(agents.render("continue.j2", minijinja::context! { prefix => prefix })?));
        let data = json!({ "model": model.info().spec, "prefix": prefix });
        recorder.event("solver", "prefill_emulated", data).await?;
    }
    let request = ChatRequest::new(messages).with_params(params).for_purpose(Purpose::Continue);
    Ok(model.chat(&request).await?)
}
