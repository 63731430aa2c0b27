//! Hallucination snowballing (Zhang et al., 2023): the model answers and justifies;
//! the tool-checker settles each supporting claim; every false claim of a wrong answer
//! is asked back to the same model in a fresh context.

use serde_json::json;

use super::{EvalStepError, ItemContext};
use crate::{
    agents::{check_answer, ClaimKind},
    eval::{answers::extract, AnswerKind},
    llm::{Message, Purpose},
    trace::{AskedBackClaim, SettledClaim, SnowballOutcome, Verdict},
};

pub(super) async fn run(cx: &ItemContext<'_>) -> Result<SnowballOutcome, EvalStepError> {
    let item = cx.item;
    let text = cx.solve(vec![Message::user(cx.question_prompt()?)], cx.spec.temperature, cx.spec.seed).await?;
    let stance = extract(AnswerKind::YesNo, &item.question, &text);
    let correct = stance.as_deref() == Some(item.gold.as_str());
    let checked = check_answer(&item.question, &text, &cx.agents.checker_tools(cx.tools), Some(cx.recorder)).await?;
    // Supporting claims: what the answer says on the way, not its verdict restated.
    let supporting = checked.iter().filter(|c| {
        matches!(c.claim.kind, ClaimKind::Divisibility { .. } | ClaimKind::Arithmetic { .. } | ClaimKind::Edge { .. })
    });
    let claims: Vec<SettledClaim> = supporting
        .clone()
        .map(|c| SettledClaim { text: c.claim.text.clone(), verdict: c.verdict, tool: c.tool.clone() })
        .collect();
    let mut false_claims = Vec::new();
    if !correct {
        // The flight list is part of the claim's meaning; the question itself is not.
        let context = item.question.split("Question:").next().filter(|c| c.len() < item.question.len());
        for c in supporting.filter(|c| c.verdict == Verdict::Contradicted) {
            let prompt = cx.agents.render(
                "claim_check.j2",
                minijinja::context! { statement => &c.claim.text, context => context.map(str::trim) },
            )?;
            let request = cx.request(Purpose::ClaimCheck, vec![Message::user(prompt)], 0.0, cx.spec.seed);
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
            false_claims.push(AskedBackClaim { text: c.claim.text.clone(), reply, judged, rejected });
        }
    }
    let dataset = item.id.split(':').next().unwrap_or("").to_string();
    cx.recorder.event("grader", "graded", json!({ "stance": stance, "correct": correct })).await?;
    Ok(SnowballOutcome {
        item_id: item.id.clone(),
        dataset,
        gold: item.gold.clone(),
        text,
        stance,
        correct,
        claims,
        false_claims,
    })
}
