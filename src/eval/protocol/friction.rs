//! Feedback friction (Jiang et al., 2025): answer; while wrong, targeted feedback from
//! an agent that knows the gold answer (never allowed to state it); answer again with
//! the whole history; up to `rounds` answers.

use serde_json::json;

use super::{Change, EvalStepError, ItemContext};
use crate::{
    agents::check_answer,
    eval::{
        answers::{extract, is_correct},
        leaks::{find_leaks, mask_leaks},
    },
    llm::{ChatRequest, Message, Purpose, SamplingParams},
    orchestrator::{
        best_of_n::{keep, mean_logprob, Candidate, CANDIDATE_TEMPERATURE},
        Strategy,
    },
    trace::{FrictionOutcome, FrictionRound},
};

/// One solver answer: the solver's reply, or under `strategy = "best-of-n"` the one of
/// `candidates` replies the exact tools support best (the friction items have no corpus,
/// so the tools are the verifier), with every candidate recorded.
async fn answer_turn(
    cx: &ItemContext<'_>,
    messages: &[Message],
    temperature: f32,
    seed: u64,
    round: u32,
) -> Result<String, EvalStepError> {
    if cx.spec.strategy != Some(Strategy::BestOfN) {
        return cx.solve(messages.to_vec(), temperature, seed).await;
    }
    if cx.change() == Some(&Change::Wait) {
        return Err(EvalStepError::NotApplicable("a \"Wait\" fork does not apply to best-of-n answers".into()));
    }
    let t = temperature.max(CANDIDATE_TEMPERATURE);
    let logprobs = cx.solver.capabilities().logprobs;
    let mut candidates = Vec::new();
    // The spec bounds `candidates` (at most 100).
    for k in 0..u32::try_from(cx.spec.candidates).unwrap_or(u32::MAX) {
        let mut request = cx.request(Purpose::Candidate, messages.to_vec(), t, seed.wrapping_add(1000 * u64::from(k)));
        request.params.logprobs = logprobs;
        let completion = cx.solver.chat(&request).await?;
        let text = completion.text().trim().to_string();
        let checked = check_answer(&cx.item.question, &text, cx.tools, Some(cx.recorder)).await?;
        let verdicts: Vec<_> = checked.iter().map(|c| c.verdict).collect();
        candidates.push(Candidate::scored(k, text, &verdicts, mean_logprob(&completion)));
    }
    let choice = keep(&mut candidates);
    let data =
        json!({ "round": round, "chosen": choice.index, "all_failed": choice.all_failed, "candidates": candidates });
    cx.recorder.event("solver", "best_of_n", data).await?;
    let mut text = candidates.get(choice.index).map(|c| c.answer.clone()).unwrap_or_default();
    if let Some(injected) = cx.take_injection() {
        cx.recorder.event("solver", "injected", json!({ "replaced": text, "answer": injected })).await?;
        text = injected;
    }
    Ok(text)
}

pub(super) async fn run(cx: &ItemContext<'_>) -> Result<FrictionOutcome, EvalStepError> {
    let spec = cx.spec;
    let item = cx.item;
    let mut messages = vec![Message::user(cx.question_prompt()?)];
    let mut rounds: Vec<FrictionRound> = Vec::new();
    let mut attempts: Vec<String> = Vec::new();
    let mut tried: Vec<String> = Vec::new();
    for round in 1..=spec.rounds {
        let temperature = (spec.temperature + spec.temperature_step * (round - 1) as f32)
            .min(spec.temperature_cap.max(spec.temperature));
        let seed = spec.seed.wrapping_add(u64::from(round));
        let mut text = answer_turn(cx, &messages, temperature, seed, round).await?;
        let mut answer = extract(cx.answer, &item.question, &text);
        let mut resampled = false;
        if spec.reject_repeats && answer.as_ref().is_some_and(|a| tried.contains(a)) {
            // Best-of-two against repeats: a hotter resample, kept only if it is new.
            cx.recorder.event("solver", "repeat_rejected", json!({ "round": round, "answer": answer })).await?;
            let retry = cx.solve(messages.clone(), (temperature + 0.3).min(2.0), seed ^ 0x5eed).await?;
            let retry_answer = extract(cx.answer, &item.question, &retry);
            if retry_answer.as_ref().is_some_and(|a| !tried.contains(a)) {
                (text, answer, resampled) = (retry, retry_answer, true);
            }
        }
        let correct = is_correct(cx.answer, answer.as_deref(), &item.gold);
        cx.recorder.event("grader", "graded", json!({ "round": round, "answer": answer, "correct": correct })).await?;
        rounds.push(FrictionRound {
            round,
            text: text.clone(),
            answer: answer.clone(),
            correct,
            temperature,
            resampled,
            feedback: None,
            leaked: None,
        });
        if correct || round == spec.rounds {
            break;
        }
        attempts.push(text.clone());
        if let Some(a) = answer {
            if !tried.contains(&a) {
                tried.push(a);
            }
        }
        let (feedback, leaked) = feedback(cx, &attempts).await?;
        if let Some(last) = rounds.last_mut() {
            last.feedback = Some(feedback.clone());
            last.leaked = Some(leaked);
        }
        let rejected: &[String] = if spec.reject_repeats { &tried } else { &[] };
        let follow_up = cx.agents.render(
            "retry.j2",
            minijinja::context! { feedback => &feedback, rejected => rejected, question => &item.question },
        )?;
        messages.push(Message::assistant(text));
        messages.push(Message::user(follow_up));
    }
    let correct = rounds.last().is_some_and(|r| r.correct);
    Ok(FrictionOutcome { item_id: item.id.clone(), gold: item.gold.clone(), rounds, max_rounds: spec.rounds, correct })
}

/// Feedback on the latest attempt, with the gold answer masked out; and whether it leaked.
async fn feedback(cx: &ItemContext<'_>, attempts: &[String]) -> Result<(String, bool), EvalStepError> {
    if let Some(Change::Feedback(text)) = cx.change() {
        cx.recorder.event("feedback", "feedback", json!({ "text": text, "replaced_by_fork": true })).await?;
        return Ok((text.clone(), false));
    }
    let mode = cx.spec.feedback.as_deref().or(cx.agents.feedback.mode.as_deref()).unwrap_or("model");
    if mode == "binary" {
        cx.recorder.event("feedback", "feedback", json!({ "text": "", "mode": "binary" })).await?;
        return Ok((String::new(), false));
    }
    let cfg = &cx.agents.feedback;
    let prompt = cx.agents.render(
        cfg.prompt.as_deref().unwrap_or("feedback.j2"),
        minijinja::context! { question => &cx.item.question, gold => &cx.item.gold, attempts => attempts },
    )?;
    let params = SamplingParams {
        temperature: cfg.temperature.unwrap_or(0.0),
        max_tokens: cfg.max_tokens.unwrap_or(160),
        seed: Some(cx.spec.seed),
        ..Default::default()
    };
    let request = ChatRequest::new(vec![Message::user(prompt)]).with_params(params).for_purpose(Purpose::Feedback);
    let raw = cx.feedback.chat(&request).await?.text().trim().to_string();
    let found = find_leaks(cx.answer, &cx.item.question, &cx.item.gold, &raw);
    let leaked = !found.is_empty();
    let text = if leaked { mask_leaks(cx.answer, &cx.item.gold, &raw, &found) } else { raw.clone() };
    // What matched is recorded with the feedback, so a reader can check each call.
    let data = json!({ "text": text, "raw": raw, "leaked": leaked, "leaks": found, "mode": mode });
    cx.recorder.event("feedback", "feedback", data).await?;
    Ok((text, leaked))
}
