//! `sim:`: a simulator for checking analyses, **not a model**.
//!
//! Its behaviour is drawn from planted probabilities, so a test can run a protocol on
//! it and check that the reported rates recover the planted ones. It knows the truth
//! only for tasks an exact computation settles (arithmetic expressions, word sorting,
//! primality, flight reachability; senator questions are always "no"). What a call is
//! for comes from the [`Purpose`] recorded with each request (feedback writer, claim
//! check, user attempt, prefilled own answer), never from our prompts' wording, so
//! editing a prompt template does not change the simulator. (The one exception is the
//! mistakes protocol's numbered steps, "Step N: ...", which its code writes, not a
//! template: that is where the simulator finds the steps to locate a mistake in.)
//!
//! It lives with the experiments, not in `llm`: it needs the exact tools to know the
//! truth, and the model layer depends on nothing but the trace records.
//!
//! Every draw is a pure function of the seed and the request, so runs and replays are
//! reproducible at any concurrency.

use std::{sync::OnceLock, time::Instant};

use async_trait::async_trait;
use regex::Regex;
use sha2::{Digest, Sha256};

use crate::{
    llm::{
        Capabilities, ChatModel, ChatRequest, Choice, Completion, FinishReason, LlmError, Message, ModelInfo,
        PrefillSupport, Purpose, Role, Usage,
    },
    tools::{evaluate_expression, is_prime, parse_flights, reachable_path},
};

/// The planted parameters; each is a probability except `seed`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimParams {
    /// A first answer is correct.
    pub accuracy: f64,
    /// After feedback, the answer becomes correct.
    pub adopt: f64,
    /// After feedback that is not adopted, the answer changes to another wrong one
    /// (otherwise the previous answer is repeated).
    pub drift: f64,
    /// Asked alone whether its own false claim is true, the model says it is false.
    pub recognize: f64,
    /// Asked alone whether a true claim is true, the model says it is false (a "no"
    /// bias; what the snowball controls measure).
    pub reject_true: f64,
    /// Continuing its own (prefilled) erroneous reasoning, it reaches the right answer.
    pub own: f64,
    /// Checking the same reasoning given as the user's attempt, it reaches the right answer.
    pub user: f64,
    /// Continuing its own erroneous reasoning after "Wait", it reaches the right answer.
    pub wait: f64,
    /// Asked for the first wrong step of a reasoning trace, it names the right one (or
    /// "no mistake" on a trace without one); otherwise another answer, uniformly.
    pub find: f64,
    /// Sampling a located step again from reasoning that holds no wrong step, it reaches
    /// the right answer (from reasoning that still holds one, `own` applies).
    pub fix: f64,
    /// As a judge, it gives a claim's true label (true for a true divisibility claim,
    /// false for a false one, unknown for anything else); otherwise one of the others.
    pub judge: f64,
    /// Seed of every draw.
    pub seed: u64,
    /// Simulated latency of each call, in milliseconds (benchmarks, kill tests).
    pub latency_ms: u64,
}

impl Default for SimParams {
    fn default() -> Self {
        Self {
            accuracy: 0.5,
            adopt: 0.5,
            drift: 0.0,
            recognize: 0.5,
            reject_true: 0.0,
            own: 0.3,
            user: 0.7,
            wait: 0.6,
            judge: 0.7,
            find: 0.5,
            fix: 0.5,
            seed: 0,
            latency_ms: 0,
        }
    }
}

impl SimParams {
    /// Parse `key=value,...` (any subset of the fields; the rest keep their defaults).
    pub fn parse(s: &str) -> Result<Self, LlmError> {
        Self::parse_pairs(s).map_err(|reason| LlmError::BadSpec { spec: format!("sim:{s}"), reason })
    }

    fn parse_pairs(s: &str) -> Result<Self, String> {
        let mut p = Self::default();
        for pair in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or(format!("`{pair}` is not key=value"))?;
            if k == "seed" || k == "latency_ms" {
                let n = v.parse().map_err(|_| format!("{k} `{v}` is not a non-negative integer"))?;
                *(if k == "seed" { &mut p.seed } else { &mut p.latency_ms }) = n;
                continue;
            }
            let x: f64 = v.parse().map_err(|_| format!("`{k}` value `{v}` is not a number"))?;
            if !(0.0..=1.0).contains(&x) {
                return Err(format!("`{k}` = {x} is not a probability in [0, 1]"));
            }
            match k {
                "accuracy" => p.accuracy = x,
                "adopt" => p.adopt = x,
                "drift" => p.drift = x,
                "recognize" => p.recognize = x,
                "reject_true" => p.reject_true = x,
                "own" => p.own = x,
                "user" => p.user = x,
                "wait" => p.wait = x,
                "judge" => p.judge = x,
                "find" => p.find = x,
                "fix" => p.fix = x,
                other => {
                    return Err(format!(
                        "unknown parameter `{other}` (accuracy, adopt, drift, recognize, reject_true, own, user, wait, judge, find, fix, seed, latency_ms)"
                    ))
                }
            }
        }
        Ok(p)
    }
}

/// A uniform draw in [0, 1) from what `h` has hashed: the top 53 bits of its digest.
pub(crate) fn unit_draw(h: Sha256) -> f64 {
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// What the simulator knows the truth of.
enum Task {
    Number(i128),
    Words(Vec<String>),
    Prime(u128),
    Route { from: String, to: String, reachable: bool },
    AlwaysNo,
}

/// The simulator backend.
pub struct SimBackend {
    params: SimParams,
    spec: String,
}

impl SimBackend {
    /// A simulator with `params`, recorded under `spec`.
    pub fn new(params: SimParams, spec: impl Into<String>) -> Self {
        Self { params, spec: spec.into() }
    }

    /// A uniform draw in [0, 1) from the seed, the request and a salt.
    fn draw(&self, request: &ChatRequest, salt: &str) -> f64 {
        let mut h = Sha256::new();
        h.update(self.params.seed.to_be_bytes());
        h.update(salt.as_bytes());
        for m in &request.messages {
            h.update([m.role as u8]);
            h.update(m.content.as_bytes());
            h.update([0]);
        }
        h.update(request.params.seed.unwrap_or(0).to_be_bytes());
        unit_draw(h)
    }

    fn reply(&self, request: &ChatRequest) -> String {
        let msgs = &request.messages;
        let first_user = msgs.iter().find(|m| m.role == Role::User).map(|m| m.content.as_str()).unwrap_or("");
        let p = &self.params;
        match request.purpose {
            Purpose::Feedback => {
                return "Your final answer is not correct. Go through your work again step by step and check every \
                        intermediate result."
                    .into()
            }
            Purpose::ClaimCheck => {
                return match statement_truth(first_user) {
                    Some(true) if self.draw(request, "reject_true") < p.reject_true => {
                        "False. The statement is wrong.".into()
                    }
                    Some(true) => "True.".into(),
                    _ if self.draw(request, "recognize") < p.recognize => "False. The statement is wrong.".into(),
                    _ => "True.".into(),
                }
            }
            Purpose::Critique => return "I do not know.".into(),
            Purpose::Judge => return self.judge(first_user),
            Purpose::LocateMistake => return self.locate(request, first_user),
            _ => {}
        }
        let Some(task) = task_of(first_user) else { return "I do not know.".into() };
        if request.purpose == Purpose::Continue {
            let prefix = msgs.last().filter(|m| m.role == Role::Assistant).map(|m| m.content.as_str()).unwrap_or("");
            let p_right = if prefix.trim_end().ends_with("Wait,") { p.wait } else { p.own };
            let right = self.draw(request, "continue") < p_right;
            return format!(" {}", answer(&task, right, self.draw(request, "wrong")));
        }
        if request.purpose == Purpose::Backtrack {
            // The reasoning kept before the located step: clean, or still holding a mistake.
            let prefix = msgs.last().filter(|m| m.role == Role::Assistant).map(|m| m.content.as_str()).unwrap_or("");
            let clean = prefix.lines().all(|l| !wrong_step(l));
            let right = self.draw(request, "fix") < if clean { p.fix } else { p.own };
            return answer(&task, right, self.draw(request, "wrong"));
        }
        if request.purpose == Purpose::CheckAttempt {
            let right = self.draw(request, "user") < p.user;
            return answer(&task, right, self.draw(request, "wrong"));
        }
        let user_turns = msgs.iter().filter(|m| m.role == Role::User).count();
        if user_turns > 1 || request.purpose == Purpose::Revise {
            if self.draw(request, "adopt") < p.adopt {
                return answer(&task, true, 0.0);
            }
            if self.draw(request, "drift") < p.drift {
                return answer(&task, false, self.draw(request, "wrong"));
            }
            let previous = msgs.iter().rev().find(|m| m.role == Role::Assistant).map(|m| m.content.clone());
            return previous.unwrap_or_else(|| answer(&task, false, 0.5));
        }
        // A first answer: its wrong variant depends on the question only, so a model
        // that ignores feedback repeats the same wrong answer.
        let right = self.draw(request, "accuracy") < p.accuracy;
        let q_only = ChatRequest::new(vec![Message::user(first_user)]);
        answer(&task, right, self.draw(&q_only, "wrong"))
    }
}

impl SimBackend {
    /// A critic's reply naming the first wrong step of the trace in `prompt` (its lines
    /// "Step N: ...", the format the mistakes protocol numbers steps in). The truth is
    /// the first step with an arithmetic equality that does not hold.
    fn locate(&self, request: &ChatRequest, prompt: &str) -> String {
        let steps: Vec<&str> =
            patterns().step.captures_iter(prompt).filter_map(|c| c.get(1)).map(|m| m.as_str()).collect();
        let truth = steps.iter().position(|s| wrong_step(s));
        let said = if self.draw(request, "find") < self.params.find {
            truth
        } else {
            // Another answer: "no mistake" or a step other than the true one.
            let others: Vec<Option<usize>> =
                std::iter::once(None).chain((0..steps.len()).map(Some)).filter(|o| *o != truth).collect();
            let u = self.draw(request, "find-wrong");
            others.get(((u * others.len() as f64) as usize).min(others.len().saturating_sub(1))).copied().flatten()
        };
        let phrasing = self.draw(request, "phrasing");
        match said {
            None if phrasing < 0.5 => "All steps are correct.".into(),
            None => "No".into(),
            Some(k) if phrasing < 0.5 => format!("Step {k} is wrong."),
            Some(k) => format!("{k}"),
        }
    }

    /// A judge's one-word label for the claim in `prompt`. The draw depends on the prompt
    /// only (not the call's seed), so every vote on one claim agrees and the planted
    /// accuracy is the judge's accuracy.
    fn judge(&self, prompt: &str) -> String {
        let truth = match statement_truth(prompt) {
            Some(true) => 0,
            Some(false) => 1,
            None => 2,
        };
        let words = ["true", "false", "unknown"];
        let key = ChatRequest::new(vec![Message::user(prompt)]);
        if self.draw(&key, "judge") < self.params.judge {
            return words[truth].into();
        }
        let other = if self.draw(&key, "judge-wrong") < 0.5 { 1 } else { 2 };
        words[(truth + other) % 3].into()
    }
}

/// The simulator's question and statement patterns, compiled once: a call must not pay
/// for them (compiled per call, they made a simulated experiment ~5x slower).
struct Patterns {
    prime: Regex,
    route: Regex,
    expression: Regex,
    divisible: Regex,
    flight: Regex,
    step: Regex,
    equality: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        // Literals, exercised by every simulator test.
        let re = |s: &str| Regex::new(s).unwrap_or_else(|e| unreachable!("bad built-in pattern {s}: {e}"));
        Patterns {
            prime: re(r"(?i)is (\d+) a prime"),
            route: re(r"(?i)flights that goes from city (\w+) to city (\w+)"),
            expression: re(r"([-(\d][-\d\s()+*/]*[\d)])\s*(?:=|\?)"),
            divisible: re(r"(\d+) is (not )?divisible by (\d+)"),
            flight: re(r"(?i)there is (a|no) (?:direct )?flight from city (\w+) to city (\w+)"),
            step: re(r"(?m)^Step \d+: (.*)$"),
            equality: re(r"([-(\d][-\d\s()+*/]*[\d)])\s*=\s*(-?\d+)\b"),
        }
    })
}

fn task_of(question: &str) -> Option<Task> {
    if let Some(words) = question.split_once("List:").and_then(|(_, l)| l.lines().next()) {
        let mut w: Vec<String> = words.split_whitespace().map(str::to_lowercase).collect();
        w.sort();
        return Some(Task::Words(w));
    }
    if let Some(c) = patterns().prime.captures(question) {
        return c[1].parse().ok().map(Task::Prime);
    }
    if let Some(c) = patterns().route.captures(question) {
        let reachable = reachable_path(&parse_flights(question), &c[1], &c[2]).is_some();
        return Some(Task::Route { from: c[1].to_string(), to: c[2].to_string(), reachable });
    }
    if question.contains("US senator") {
        return Some(Task::AlwaysNo);
    }
    let expr = patterns().expression.captures_iter(question).map(|c| c[1].to_string()).max_by_key(String::len)?;
    let v = evaluate_expression(&expr).ok()?;
    v.is_integer().then(|| v.to_integer().to_string().parse().ok()).flatten().map(Task::Number)
}

/// Whether a reasoning step states an arithmetic equality that does not hold.
fn wrong_step(step: &str) -> bool {
    patterns().equality.captures_iter(step).any(|c| {
        let stated: Option<i128> = c[2].parse().ok();
        match (evaluate_expression(&c[1]), stated) {
            (Ok(v), Some(n)) => !(v.is_integer() && v.to_integer().to_string() == n.to_string()),
            _ => false,
        }
    })
}

/// Whether a divisibility statement is true, when it is one.
fn statement_truth(prompt: &str) -> Option<bool> {
    // A claim-check prompt: the context (a flight list), then "Statement: ...".
    let (context, statement) = prompt.rsplit_once("Statement:").unwrap_or(("", prompt));
    if let Some(c) = patterns().divisible.captures(statement) {
        let (n, d): (u128, u128) = (c[1].parse().ok()?, c[3].parse().ok()?);
        return (d != 0).then(|| (n % d == 0) != c.get(2).is_some());
    }
    let c = patterns().flight.captures(statement)?;
    let listed = parse_flights(context).iter().any(|(from, to)| from == &c[2] && to == &c[3]);
    Some(listed == c[1].eq_ignore_ascii_case("a"))
}

/// An answer to `task`, right or wrong; `u` picks the wrong variant.
fn answer(task: &Task, right: bool, u: f64) -> String {
    let pick = |k: usize| ((u * k as f64) as usize).min(k.saturating_sub(1));
    match task {
        Task::Number(v) => {
            let delta = (1 + pick(9)) as i128 * if u < 0.5 { -1 } else { 1 };
            format!("So the answer is {}.", if right { *v } else { v + delta })
        }
        Task::Words(w) => {
            let mut w = w.clone();
            if !right && w.len() > 1 {
                let i = pick(w.len() - 1);
                w.swap(i, i + 1);
            }
            format!("So the answer is {}.", w.join(" "))
        }
        Task::Prime(n) if right || !is_prime(*n) => format!("Yes, {n} is a prime number."),
        Task::Prime(n) => {
            let d = [3u128, 7, 11, 13, 17].into_iter().cycle().skip(pick(5)).find(|d| n % d != 0).unwrap_or(3);
            format!("No, {n} is not a prime number. {n} is divisible by {d}.")
        }
        Task::Route { from, to, reachable } => match (*reachable, right) {
            (true, true) => format!("Yes, there is a series of flights from city {from} to city {to}."),
            (false, true) | (true, false) => {
                format!("No, there is no series of flights from city {from} to city {to}.")
            }
            // A wrong "yes", justified by a direct flight the list does not have.
            (false, false) => format!("Yes. There is a flight from city {from} to city {to}."),
        },
        Task::AlwaysNo if right => "No, there was no such senator.".into(),
        Task::AlwaysNo => "Yes, there was such a senator.".into(),
    }
}

#[async_trait]
impl ChatModel for SimBackend {
    fn info(&self) -> ModelInfo {
        ModelInfo::new(self.spec.clone(), "sim")
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { logprobs: false, score_continuation: false, prefill: true }
    }

    async fn prefill_support(&self) -> Result<PrefillSupport, LlmError> {
        // It reads what a request is for from its purpose, not from a rendered prompt.
        Ok(PrefillSupport::Rendered)
    }

    async fn chat(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
        let started = Instant::now();
        if self.params.latency_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(self.params.latency_ms)).await;
        }
        let text = self.reply(request);
        let words = |s: &str| s.split_whitespace().count() as u32;
        let prompt_tokens = request.messages.iter().map(|m| words(&m.content)).sum();
        Ok(Completion {
            model: self.spec.clone(),
            choices: vec![Choice { text: text.clone(), finish_reason: FinishReason::Stop, logprobs: None }],
            usage: Usage { prompt_tokens, completion_tokens: words(&text) },
            latency_ms: started.elapsed().as_millis() as u64,
            rendered_prompt: None,
            seed: request.params.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(sim: &SimBackend, messages: Vec<Message>) -> String {
        sim.reply(&ChatRequest::new(messages).for_purpose(Purpose::Answer))
    }

    #[test]
    fn params_parse_and_reject_bad_values() {
        let p = SimParams::parse("accuracy=0.2, adopt=1,seed=9").unwrap();
        assert_eq!((p.accuracy, p.adopt, p.seed), (0.2, 1.0, 9));
        assert!(SimParams::parse("accuracy=1.5").unwrap_err().to_string().contains("probability"));
        assert!(SimParams::parse("colour=0.1").unwrap_err().to_string().contains("unknown parameter"));
        assert!(SimParams::parse("adopt").unwrap_err().to_string().contains("key=value"));
    }

    #[test]
    fn certain_parameters_give_certain_behaviour() {
        let right = SimBackend::new(SimParams { accuracy: 1.0, ..Default::default() }, "sim");
        let wrong = SimBackend::new(SimParams { accuracy: 0.0, adopt: 0.0, ..Default::default() }, "sim");
        let q = "((3 * 4) - 5) =";
        assert_eq!(ask(&right, vec![Message::user(q)]), "So the answer is 7.");
        let first = ask(&wrong, vec![Message::user(q)]);
        assert_ne!(first, "So the answer is 7.");
        let again = vec![Message::user(q), Message::assistant(first.clone()), Message::user("Feedback: no.")];
        assert_eq!(ask(&wrong, again), first, "a model that never adopts repeats itself");
        let p = "Is 7411 a prime number?";
        assert!(ask(&right, vec![Message::user(p)]).starts_with("Yes"));
        assert!(ask(&wrong, vec![Message::user(p)]).contains("7411 is divisible by"));
        // The purpose, not the wording, picks the behaviour.
        let check =
            |text: &str| wrong.reply(&ChatRequest::new(vec![Message::user(text)]).for_purpose(Purpose::ClaimCheck));
        assert_eq!(check("Any wording at all: 7411 is divisible by 3?"), check("7411 is divisible by 3"));
        assert_eq!(check("12 is divisible by 3"), "True.");
        let feedback = ChatRequest::new(vec![Message::user(p)]).for_purpose(Purpose::Feedback);
        assert!(wrong.reply(&feedback).contains("not correct"));
        let words = "Sort the following words alphabetically: List: pear apple fig";
        assert_eq!(ask(&right, vec![Message::user(words)]), "So the answer is apple fig pear.");
    }

    #[test]
    fn the_located_step_is_the_first_false_equality_and_backtracking_fixes_from_a_clean_prefix() {
        let sure = SimBackend::new(SimParams { find: 1.0, fix: 1.0, own: 0.0, ..Default::default() }, "sim");
        let prompt = "((3 + 4) * 5) =\nStep 0: Write it as A * 5.\nStep 1: A = (3 + 4) = 8.\nStep 2: 8 * 5 = 40.";
        let locate =
            |p: &str| sure.reply(&ChatRequest::new(vec![Message::user(p)]).for_purpose(Purpose::LocateMistake));
        let said = locate(prompt);
        assert_eq!(crate::agents::parse_location(&said, 3), crate::trace::Location::Step(1), "{said}");
        let clean = prompt.replace("= 8.", "= 7.").replace("8 * 5 = 40", "7 * 5 = 35");
        assert_eq!(crate::agents::parse_location(&locate(&clean), 3), crate::trace::Location::NoMistake);
        let backtrack = |prefix: &str| {
            let messages = vec![Message::user("((3 + 4) * 5) ="), Message::assistant(prefix)];
            sure.reply(&ChatRequest::new(messages).for_purpose(Purpose::Backtrack))
        };
        assert_eq!(backtrack("Write it as A * 5.\n"), "So the answer is 35.", "a clean prefix: fix = 1");
        assert_ne!(backtrack("Write it as A * 5.\nA = (3 + 4) = 8.\n"), "So the answer is 35.", "a wrong one: own = 0");
    }

    #[test]
    fn draws_are_pure_functions_of_seed_and_request() {
        let a = SimBackend::new(SimParams { seed: 1, ..Default::default() }, "sim");
        let b = SimBackend::new(SimParams { seed: 1, ..Default::default() }, "sim");
        let r = ChatRequest::new(vec![Message::user("Is 7411 a prime number?")]);
        assert_eq!(a.draw(&r, "x"), b.draw(&r, "x"));
        assert_ne!(a.draw(&r, "x"), a.draw(&r, "y"));
    }
}
