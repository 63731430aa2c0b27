//! The verifier, measured: for each gold-labelled claim (SciFact), retrieve passages
//! from the corpus with the claim as the query, judge the claim against them, and
//! compare the label with the gold one. The model under test is the model judge.

use serde_json::json;

use super::{EvalStepError, ItemContext};
use crate::{agents::calibration::gold_label, corpus::SearchOptions, trace::VerifyOutcome};

pub(super) async fn run(cx: &ItemContext<'_>) -> Result<VerifyOutcome, EvalStepError> {
    let item = cx.item;
    let Some(retriever) = cx.retriever else {
        return Err(EvalStepError::NotApplicable("the verify protocol needs the spec's corpus, opened".into()));
    };
    let gold = gold_label(&item.gold).ok_or_else(|| {
        EvalStepError::NotApplicable(format!(
            "item {}: gold label {:?} is not SUPPORT, CONTRADICT or NOT ENOUGH INFO",
            item.id, item.gold
        ))
    })?;
    let options = SearchOptions { k: cx.spec.candidates, max_per_doc: Some(1), ..Default::default() };
    let hits = retriever.search(&item.question, &options)?;
    let evidence: Vec<String> = hits.iter().map(|h| h.passage.evidence_text()).collect();
    // The experiment measures the judge as its spec configures it: uncalibrated.
    let judge = cx.spec.judge.judge(cx.agents, cx.solver, cx.spec.seed, [0.0; 3]);
    let judgement = judge.judge(&item.question, &evidence).await?;
    cx.recorder.event("judge", "judgement", json!({ "claim": item.question, "judgement": judgement })).await?;
    Ok(VerifyOutcome {
        item_id: item.id.clone(),
        claim: item.question.clone(),
        gold,
        predicted: judgement.label,
        score: judgement.score,
        judge: judgement.judge,
        retrieved_docs: hits.iter().map(|h| h.passage.doc_id.clone()).collect(),
        gold_docs: item.evidence_docs.clone(),
        correct: judgement.label == gold,
    })
}
