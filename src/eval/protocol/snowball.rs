//! Hallucination snowballing (Zhang et al., 2023): the model answers and justifies;
//! the tool-checker settles each supporting claim; every false claim of a wrong answer
//! is asked back to the same model in a fresh context.

use serde_json::json;

use super::{EvalStepError, ItemContext};
use crate::{
    agents::{check_answer, ClaimKind},
    eval::{answers::extract, AnswerKind},
    llm::{Message, Purpose},
    tools::evaluate_expression,
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
    // The flight list is part of a claim's meaning; the question itself is not.
    let context = item.question.split("Question:").next().filter(|c| c.len() < item.question.len()).map(str::trim);
    let mut false_claims = Vec::new();
    if !correct {
        for c in supporting.clone().filter(|c| c.verdict == Verdict::Contradicted) {
            false_claims.push(ask_back(cx, &c.claim.text, context, None).await?);
        }
    }
    let mut true_claims = Vec::new();
    if cx.spec.controls.unwrap_or(false) {
        let own = supporting.clone().find(|c| c.verdict == Verdict::Supported).map(|c| (c.claim.text.clone(), false));
        let counterpart = || {
            supporting
                .clone()
                .filter(|c| c.verdict == Verdict::Contradicted)
                .find_map(|c| true_counterpart(&c.claim.kind))
                .map(|t| (t, true))
        };
        if let Some((statement, made)) = own.or_else(counterpart) {
            true_claims.push(ask_back(cx, &statement, context, Some(made)).await?);
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
        true_claims,
    })
}

/// Ask `statement` back to the model alone (with the flight list as `context`), and
/// read whether it rejects it. `control`: `None` for a false claim of the answer;
/// for a control, whether it is a counterpart made from a refuted claim.
async fn ask_back(
    cx: &ItemContext<'_>,
    statement: &str,
    context: Option<&str>,
    control: Option<bool>,
) -> Result<AskedBackClaim, EvalStepError> {
    let prompt =
        cx.agents.render("claim_check.j2", minijinja::context! { statement => statement, context => context })?;
    let request = cx.request(Purpose::ClaimCheck, vec![Message::user(prompt)], 0.0, cx.spec.seed);
    let reply = cx.solver.chat(&request).await?.text().trim().to_string();
    let judged = extract(AnswerKind::YesNo, "", &reply);
    let rejected = judged.as_deref() == Some("no");
    let counterpart = control.unwrap_or(false);
    let (event, data) = match control {
        None => ("claim_asked_back", json!({ "claim": statement, "reply": reply, "rejected": rejected })),
        Some(made) => (
            "control_asked_back",
            json!({ "claim": statement, "reply": reply, "rejected": rejected, "counterpart": made }),
        ),
    };
    cx.recorder.event("grader", event, data).await?;
    Ok(AskedBackClaim { text: statement.to_string(), reply, judged, rejected, counterpart })
}

/// A true statement of the same template as a refuted claim: the divisibility or the
/// flight negated, the expression with its exact value.
fn true_counterpart(kind: &ClaimKind) -> Option<String> {
    match kind {
        ClaimKind::Divisibility { n, divisor, divides } => {
            Some(format!("{n} is {}divisible by {divisor}.", if *divides { "not " } else { "" }))
        }
        ClaimKind::Edge { from, to, exists } => {
            Some(format!("There is {} flight from city {from} to city {to}.", if *exists { "no" } else { "a" }))
        }
        ClaimKind::Arithmetic { expression, .. } => {
            let value = evaluate_expression(expression).ok()?;
            value.is_integer().then(|| format!("{expression} = {}", value.to_integer()))
        }
        _ => None,
    }
}
