//! Mistake finding and correction from a location (Tyen et al., 2023, BIG-Bench
//! Mistake): the model under test, as critic, names the first wrong step of a reasoning
//! trace or says all steps are correct; then the trace is backtracked from three
//! locations (the annotators', the critic's, and a simulated locator's that is right
//! with a chosen probability) and each result is graded against the gold answer.
//!
//! Backtracking follows the paper: the steps before the location are the model's own
//! prefilled answer; the located step is sampled again at temperature 1 (up to
//! [`STEP_SAMPLES`] times, keeping the first sample unlike the original step), and the
//! rest is continued at the spec's temperature. A location that names no step of the
//! trace (no mistake, a step past the end, an unreadable reply) leaves the trace as it
//! was.

use std::collections::HashMap;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Change, EvalStepError, ItemContext};
use crate::{
    agents::parse_location,
    eval::{
        answers::{extract, is_correct, normalize_gold},
        sim::unit_draw,
        AnswerKind,
    },
    llm::{Message, Purpose},
    trace::{Backtrack, Location, LocationSource, MistakesOutcome},
};

/// Samples of the located step drawn at most (the paper draws 8).
pub const STEP_SAMPLES: u32 = 8;

/// The simulated locator's accuracy when the spec does not set one (the middle of the
/// paper's 60-70%).
pub const DEFAULT_SIMULATED_ACCURACY: f64 = 0.65;

/// How the steps are numbered in the prompt: the format the critic is asked to answer
/// in, and the one `sim:` reads the steps from (code, not a template, owns it).
pub fn numbered_steps(steps: &[String]) -> String {
    steps.iter().enumerate().map(|(i, s)| format!("Step {i}: {s}")).collect::<Vec<_>>().join("\n")
}

pub(super) async fn run(cx: &ItemContext<'_>) -> Result<MistakesOutcome, EvalStepError> {
    let item = cx.item;
    if matches!(cx.change(), Some(Change::Wait | Change::Feedback(_) | Change::Inject(_))) {
        return Err(EvalStepError::NotApplicable(
            "the mistakes protocol has no solver answer to inject into, continue or give feedback on; \
             fork it with a spec option (simulated_location_accuracy=P, backtrack=false, max_tokens=N, ...)"
                .into(),
        ));
    }
    if item.steps.is_empty() {
        return Err(EvalStepError::NotApplicable(format!(
            "item {} has no reasoning steps (the mistakes protocol reads BIG-Bench Mistake traces: loader = \"bbm\")",
            item.id
        )));
    }
    let backtracking = cx.spec.backtrack.unwrap_or(true);
    if backtracking && !cx.solver.capabilities().prefill {
        return Err(EvalStepError::NotApplicable(format!(
            "model {} does not continue a prefilled assistant turn, which backtracking needs \
             (set backtrack = false in the spec to measure mistake finding alone)",
            cx.solver.info().spec
        )));
    }
    let (t, seed) = (cx.spec.temperature, cx.spec.seed);
    let prompt = cx.agents.render(
        "find_mistake.j2",
        minijinja::context! { question => &item.question, steps => numbered_steps(&item.steps), last => item.steps.len() - 1 },
    )?;
    let request = cx.request(Purpose::LocateMistake, vec![Message::user(prompt)], t, seed);
    let reply = cx.solver.chat(&request).await?.text().trim().to_string();
    let critic_location = parse_location(&reply, item.steps.len());
    cx.recorder.event("critic", "location", json!({ "reply": reply, "location": critic_location })).await?;
    let gold = Location::of_gold(item.mistake_index);
    let original = item.steps.join("\n");
    let original_answer = extract(cx.answer, &item.question, &original);
    let original_correct = is_correct(cx.answer, original_answer.as_deref(), &item.gold);
    let mut backtracks = Vec::new();
    if backtracking {
        let accuracy = cx.spec.simulated_location_accuracy.unwrap_or(DEFAULT_SIMULATED_ACCURACY);
        let simulated = simulated_location(seed, &item.id, gold, item.steps.len(), accuracy);
        cx.recorder
            .event("locator", "simulated_location", json!({ "location": simulated, "accuracy": accuracy }))
            .await?;
        // Two sources naming one step share its regeneration: the requests would be the same.
        let mut regenerated: HashMap<usize, Regenerated> = HashMap::new();
        for (source, location) in [
            (LocationSource::Gold, gold),
            (LocationSource::Critic, critic_location),
            (LocationSource::Simulated, simulated),
        ] {
            let Some(step) = location.step() else {
                backtracks.push(Backtrack {
                    source,
                    location,
                    regenerated: false,
                    new_step: None,
                    samples: 0,
                    text: original.clone(),
                    answer: original_answer.clone(),
                    correct: original_correct,
                });
                continue;
            };
            let done = match regenerated.get(&step) {
                Some(r) => r.clone(),
                None => {
                    let r = regenerate(cx, step).await?;
                    regenerated.insert(step, r.clone());
                    r
                }
            };
            let answer = extract(cx.answer, &item.question, &done.text);
            let correct = is_correct(cx.answer, answer.as_deref(), &item.gold);
            let b = Backtrack {
                source,
                location,
                regenerated: true,
                new_step: Some(done.new_step),
                samples: done.samples,
                text: done.text,
                answer,
                correct,
            };
            cx.recorder.event("solver", "backtrack", json!(b)).await?;
            backtracks.push(b);
        }
    }
    Ok(MistakesOutcome {
        item_id: item.id.clone(),
        task: item.id.rsplit_once(':').map_or(item.id.as_str(), |(task, _)| task).to_string(),
        gold: item.gold.clone(),
        steps: item.steps.len(),
        mistake_index: item.mistake_index,
        critic_reply: reply,
        critic_location,
        original_answer,
        original_correct,
        backtracks,
        correct: critic_location == gold,
    })
}

/// A trace regenerated from one step.
#[derive(Clone)]
struct Regenerated {
    new_step: String,
    samples: u32,
    text: String,
}

/// Keep the steps before `step`, sample `step` again until it differs from the
/// original, and continue from there.
async fn regenerate(cx: &ItemContext<'_>, step: usize) -> Result<Regenerated, EvalStepError> {
    let item = cx.item;
    let prefix: String = item.steps[..step].iter().map(|s| format!("{s}\n")).collect();
    let question = Message::user(cx.question_prompt()?);
    let turn = |text: String| {
        let mut messages = vec![question.clone()];
        if !text.is_empty() {
            messages.push(Message::assistant(text));
        }
        messages
    };
    // Compared as exact answers are: whitespace folded, lower-cased.
    let original = normalize_gold(AnswerKind::Exact, &item.steps[step]);
    let (mut new_step, mut samples) = (String::new(), 0);
    while samples < STEP_SAMPLES {
        samples += 1;
        let seed = cx.spec.seed.wrapping_add(u64::from(samples));
        let mut request = cx.request(Purpose::Backtrack, turn(prefix.clone()), 1.0, seed);
        request.params.stop = vec!["\n".into()];
        let sample = cx.solver.chat(&request).await?.text().trim().to_string();
        let differs = !sample.is_empty() && normalize_gold(AnswerKind::Exact, &sample) != original;
        if differs || samples == STEP_SAMPLES {
            new_step = sample;
            break;
        }
    }
    let mut text = format!("{prefix}{new_step}");
    // A step that states the final answer ends the trace, as the dataset's steps do
    // ("So the answer is ..."); otherwise the model continues its own reasoning.
    if !new_step.to_lowercase().contains("the answer is") {
        let so_far = format!("{text}\n");
        let request = cx.request(Purpose::Continue, turn(so_far.clone()), cx.spec.temperature, cx.spec.seed);
        let cont = cx.solver.chat(&request).await?.text().to_string();
        text = format!("{so_far}{cont}").trim_end().to_string();
    }
    Ok(Regenerated { new_step, samples, text })
}

/// A location that is the gold one with probability `accuracy`, else one of the other
/// answers the critic could give (another step, or "no mistake"), uniformly; drawn
/// from the seed and the item alone, so a replay draws the same.
pub fn simulated_location(seed: u64, item_id: &str, gold: Location, steps: usize, accuracy: f64) -> Location {
    let draw = |salt: &str| {
        let mut h = Sha256::new();
        h.update(seed.to_be_bytes());
        h.update(item_id.as_bytes());
        h.update(salt.as_bytes());
        unit_draw(h)
    };
    if draw("right") < accuracy {
        return gold;
    }
    let others: Vec<Location> =
        std::iter::once(Location::NoMistake).chain((0..steps).map(Location::Step)).filter(|l| *l != gold).collect();
    if others.is_empty() {
        return gold;
    }
    let pick = ((draw("which") * others.len() as f64) as usize).min(others.len() - 1);
    others[pick]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_locator_is_right_at_its_rate_and_otherwise_wrong() {
        let n = 4000;
        let mut right = 0;
        for i in 0..n {
            let gold = if i % 3 == 0 { Location::NoMistake } else { Location::Step(i % 4) };
            let got = simulated_location(7, &format!("t:{i}"), gold, 5, 0.65);
            right += usize::from(got == gold);
            assert!(got == Location::NoMistake || got.step().is_some_and(|s| s < 5), "{got:?}");
        }
        let rate = right as f64 / n as f64;
        assert!((rate - 0.65).abs() < 0.03, "{rate}");
        assert_eq!(simulated_location(7, "t:1", Location::Step(1), 5, 1.0), Location::Step(1));
        assert_ne!(simulated_location(7, "t:1", Location::Step(1), 5, 0.0), Location::Step(1));
    }
}
