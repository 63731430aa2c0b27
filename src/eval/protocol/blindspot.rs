//! The self-correction blind spot (Tsui, 2025): one erroneous reasoning prefix (steps
//! up to and including the first mistake), shown (a) as the user's attempt, (b) as the
//! model's own prefilled answer, (c) as (b) followed by "Wait,".

use serde_json::{json, Value};

use super::{Change, EvalStepError, ItemContext};
use crate::{
    eval::answers::{extract, is_correct},
    llm::Message,
};

pub(super) async fn run(cx: &ItemContext<'_>) -> Result<Value, EvalStepError> {
    let item = cx.item;
    if matches!(cx.change(), Some(Change::Wait | Change::Feedback(_))) {
        return Err(EvalStepError::NotApplicable(
            "the blind-spot protocol measures \"Wait\" itself and has no feedback; use inject=TEXT or a spec option"
                .into(),
        ));
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
    let user_text = cx.solver.chat(&cx.request(vec![Message::user(attempt)], t, seed)).await?.text().trim().to_string();
    let question = Message::user(cx.question_prompt()?);
    let mut conditions = serde_json::Map::new();
    for (name, own_prefix) in [("own", prefix.clone()), ("own_wait", format!("{prefix}\nWait,"))] {
        let messages = vec![question.clone(), Message::assistant(own_prefix.clone())];
        let cont = cx.solver.chat(&cx.request(messages, t, seed)).await?.text().to_string();
        conditions.insert(name.into(), grade(cx, &format!("{own_prefix}{cont}"), Some(cont)));
    }
    conditions.insert("user".into(), grade(cx, &user_text, None));
    let out = json!({
        "protocol": "blindspot", "item_id": item.id, "gold": item.gold, "mistake_index": mistake,
        "prefix": prefix, "conditions": conditions,
        "correct": conditions.get("own").and_then(|c| c["correct"].as_bool()).unwrap_or(false),
    });
    cx.recorder.event("grader", "graded", out["conditions"].clone()).await?;
    Ok(out)
}

fn grade(cx: &ItemContext<'_>, text: &str, continuation: Option<String>) -> Value {
    let answer = extract(cx.answer, &cx.item.question, text);
    let correct = is_correct(cx.answer, answer.as_deref(), &cx.item.gold);
    json!({ "text": text, "continuation": continuation, "answer": answer, "correct": correct })
}
