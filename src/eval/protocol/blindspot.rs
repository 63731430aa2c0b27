//! The self-correction blind spot (Tsui, 2025): one erroneous reasoning prefix (steps
//! up to and including the first mistake), shown (a) as the user's attempt, (b) as the
//! model's own prefilled answer, (c) as (b) followed by "Wait,".
//!
//! (b) and (c) need a backend that really continues a prefilled assistant turn; an
//! emulated prefill would turn them into user-text conditions, so such a backend is
//! refused instead.

use super::{Change, EvalStepError, ItemContext};
use crate::{
    eval::answers::{extract, is_correct},
    llm::{Message, Purpose},
    trace::{BlindspotConditions, BlindspotOutcome, ConditionResult},
};

pub(super) async fn run(cx: &ItemContext<'_>) -> Result<BlindspotOutcome, EvalStepError> {
    let item = cx.item;
    if matches!(cx.change(), Some(Change::Wait | Change::Feedback(_))) {
        return Err(EvalStepError::NotApplicable(
            "the blind-spot protocol measures \"Wait\" itself and has no feedback; use inject=TEXT or a spec option"
                .into(),
        ));
    }
    if !cx.solver.capabilities().prefill {
        return Err(EvalStepError::NotApplicable(format!(
            "model {} does not continue a prefilled assistant turn, which the own-reasoning conditions need",
            cx.solver.info().spec
        )));
    }
    let Some(mistake) = item.mistake_index else {
        return Err(EvalStepError::NotApplicable(format!(
            "item {} has no marked mistake (set require_mistake = true)",
            item.id
        )));
    };
    let prefix = match cx.take_injection() {
        Some(text) => text,
        None => item.steps[..=mistake].join("\n"),
    };
    let (t, seed) = (cx.spec.temperature, cx.spec.seed);
    let attempt =
        cx.agents.render("attempt.j2", minijinja::context! { question => &item.question, attempt => &prefix })?;
    let request = cx.request(Purpose::CheckAttempt, vec![Message::user(attempt)], t, seed);
    let user_text = cx.solver.chat(&request).await?.text().trim().to_string();
    let question = Message::user(cx.question_prompt()?);
    let mut own = Vec::new();
    for own_prefix in [prefix.clone(), format!("{prefix}\nWait,")] {
        let messages = vec![question.clone(), Message::assistant(own_prefix.clone())];
        let cont = cx.solver.chat(&cx.request(Purpose::Continue, messages, t, seed)).await?.text().to_string();
        own.push(grade(cx, &format!("{own_prefix}{cont}"), Some(cont)));
    }
    let own_wait = own.pop().unwrap_or_else(|| grade(cx, "", None));
    let own = own.pop().unwrap_or_else(|| grade(cx, "", None));
    let conditions = BlindspotConditions { user: grade(cx, &user_text, None), own, own_wait };
    cx.recorder.event("grader", "graded", serde_json::to_value(&conditions).unwrap_or_default()).await?;
    Ok(BlindspotOutcome {
        item_id: item.id.clone(),
        gold: item.gold.clone(),
        mistake_index: mistake,
        prefix,
        correct: conditions.own.correct,
        conditions,
    })
}

fn grade(cx: &ItemContext<'_>, text: &str, continuation: Option<String>) -> ConditionResult {
    let answer = extract(cx.answer, &cx.item.question, text);
    let correct = is_correct(cx.answer, answer.as_deref(), &cx.item.gold);
    ConditionResult { text: text.to_string(), continuation, answer, correct }
}
