//! Hallucination snowballing (Zhang et al., 2023): the model answers and justifies;
//! the tool-checker settles each supporting claim; every false claim of a wrong answer
//! is asked back to the same model in a fresh context.

use serde_json::{json, Value};

use super::{EvalStepError, ItemContext};
use crate::{
    agents::{check_answer, ClaimKind, Verdict},
    eval::{answers::extract, AnswerKind},
    llm::Message,
};

pub(super) async fn run(cx: &ItemContext<'_>) -> Result<Value, EvalStepError> {
    let item = cx.item;
    let text = cx.solve(vec![Message::user(cx.question_prompt()?)], cx.spec.temperature, cx.spec.seed).await?;
    let stance = extract(AnswerKind::YesNo, &item.question, &text);
    let correct = stance.as_deref() == Some(item.gold.as_str());
    let checked = check_answer(&item.question, &text, cx.tools, Some(cx.recorder)).await?;
    // Supporting claims: what the answer says on the way, not its verdict restated.
    let supporting = checked.iter().filter(|c| {
        matches!(c.claim.kind, ClaimKind::Divisibility { .. } | ClaimKind::Arithmetic { .. } | ClaimKind::Edge { .. })
    });
    let claims: Vec<Value> =
        supporting.clone().map(|c| json!({ "text": c.claim.text, "verdict": c.verdict, "tool": c.tool })).collect();
    let mut false_claims = Vec::new();
    if !correct {
        // The flight list is part of the claim's meaning; the question itself is not.
        let context = item.question.split("Question:").next().filter(|c| c.len() < item.question.len());
        for c in supporting.filter(|c| c.verdict == Verdict::Contradicted) {
            let prompt = cx.agents.render(
                "claim_check.j2",
                minijinja::context! { statement => &c.claim.text, context => context.map(str::trim) },
            )?;
            let request = cx.request(vec![Message::user(prompt)], 0.0, cx.spec.seed);
            let reply = cx.solver.chat(&request).await?.text().trim().to_string();
            let judged = extract(AnswerKind::YesNo, "", &reply);
            let rejected = judged.as_deref() == Some("no");
            cx.recorder
                .event(
                    "grader",
                    "claim_asked_back",
                    json!({ "claim": c.claim.text, "reply": reply, "rejected": rejected }),
                )
                .await?;
            false_claims.push(json!({ "text": c.claim.text, "reply": reply, "judged": judged, "rejected": rejected }));
        }
    }
    let dataset = item.id.split(':').next().unwrap_or("");
    cx.recorder.event("grader", "graded", json!({ "stance": stance, "correct": correct })).await?;
    Ok(json!({
        "protocol": "snowball", "item_id": item.id, "dataset": dataset, "gold": item.gold, "text": text,
        "stance": stance, "correct": correct, "claims": claims, "false_claims": false_claims,
    }))
}
