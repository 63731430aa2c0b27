//! Our own datasets in the shared datasets' formats, generated per test, and eval specs
//! over them. Every answer is settled by an exact computation, so the `sim:` simulator
//! knows the truth of each item.

use std::path::Path;

use recheck::{eval::EvalSpec, tools::is_prime};
use serde_json::{json, Value};

/// Parse an eval spec written in the test.
pub fn spec(toml_text: &str) -> EvalSpec {
    EvalSpec::parse(toml_text).unwrap()
}

/// Our own fixtures, in the shared datasets' formats.
pub fn write_fixtures(dir: &Path, n: usize) {
    let primes: Vec<u64> = (1009..).filter(|p| is_prime(u128::from(*p))).take(n).collect();
    let items: Vec<Value> = primes
        .iter()
        .map(|p| json!({ "question": format!("Is {p} a prime number?"), "number": p, "answer": true }))
        .collect();
    std::fs::write(dir.join("primality.json"), serde_json::to_string(&items).unwrap()).unwrap();
    let graphs: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "Current flight information (the following flights are one-way only):\nThere is a flight from city A{i} to city B\nThere is a flight from city C to city D\n\nQuestion: Is there a series of flights that goes from city A{i} to city D?"
            )
        })
        .collect();
    std::fs::write(dir.join("graph.json"), serde_json::to_string(&graphs).unwrap()).unwrap();
    let mut mult = String::new();
    let mut bbm = String::new();
    for i in 0..n as i64 {
        let (a, b, c) = (10 + i, 3 + i % 7, 20 + 3 * i);
        mult.push_str(&format!(
            "{}\n",
            json!({ "question": format!("What is {a} * {c}?"), "answer": (a * c).to_string() })
        ));
        let right = (a + b) * c;
        let steps = [
            format!("Let's calculate A = ({a} + {b}) = {}.", a + b),
            format!("Then A * {c} = {}. So the answer is {}", right + 1, right + 1),
        ];
        bbm.push_str(&format!(
            "{}\n",
            json!({ "input": format!("(({a} + {b}) * {c}) ="), "steps": steps, "answer": (right + 1).to_string(), "target": right.to_string(), "mistake_index": 1 })
        ));
    }
    std::fs::write(dir.join("multiplication.jsonl"), mult).unwrap();
    std::fs::write(dir.join("arithmetic_bbm.jsonl"), bbm).unwrap();
    write_mistake_traces(dir, n);
}

/// Three-step traces in BIG-Bench Mistake's format whose every equality can be checked:
/// a third without a mistake, a third wrong from step 1, a third from step 2 (each step
/// after a mistake follows from it, as in the dataset).
fn write_mistake_traces(dir: &Path, n: usize) {
    let mut out = String::new();
    for i in 0..n as i64 {
        let (a, b, c) = (10 + i, 3 + i % 7, 20 + 3 * i);
        let right = (a + b) * c;
        let (s, v, mistake) = match i % 3 {
            0 => (a + b, right, None),
            1 => (a + b + 1, (a + b + 1) * c, Some(1)),
            _ => (a + b, right + 1, Some(2)),
        };
        let steps = [
            format!("This equation can be written as A * C, where A = ({a} + {b}) and C = {c}."),
            format!("Let's calculate A = ({a} + {b}) = {s}."),
            format!("Then A * C = {s} * {c} = {v}. So the answer is {v}"),
        ];
        let line = json!({ "input": format!("(({a} + {b}) * {c}) ="), "steps": steps, "answer": v.to_string(), "target": right.to_string(), "mistake_index": mistake });
        out.push_str(&format!("{line}\n"));
    }
    std::fs::write(dir.join("mistakes_bbm.jsonl"), out).unwrap();
}

/// The mistakes spec over `mistakes_bbm.jsonl`.
pub fn mistakes_spec(dir: &Path) -> EvalSpec {
    spec(&format!(
        "name = \"m\"\nprotocol = \"mistakes\"\n[[datasets]]\nloader = \"bbm\"\npath = \"{}\"\nanswer = \"number\"\n",
        dir.join("mistakes_bbm.jsonl").display()
    ))
}

/// The friction spec over `multiplication.jsonl`.
pub fn friction_spec(dir: &Path, rounds: u32) -> EvalSpec {
    spec(&format!(
        "name = \"f\"\nprotocol = \"friction\"\nrounds = {rounds}\n[[datasets]]\nloader = \"jsonl\"\npath = \"{}\"\nanswer = \"number\"\n",
        dir.join("multiplication.jsonl").display()
    ))
}

/// Our own claims in SciFact's format: true and false divisibility claims (SUPPORT,
/// CONTRADICT) and claims no evidence settles (NOT ENOUGH INFO), with a small corpus.
pub fn write_verify_fixtures(dir: &Path, per_label: u64) -> EvalSpec {
    let (mut claims, mut corpus) = (String::new(), String::new());
    for i in 0..per_label {
        let n = 1001 + 7 * i; // 1001 = 7 * 143
        let doc = 10_000 + i;
        let lines = [
            json!({"id": 3 * i, "claim": format!("{} is divisible by 7", n), "evidence": {doc.to_string(): [{"sentences": [1], "label": "SUPPORT"}]}, "cited_doc_ids": [doc]}),
            json!({"id": 3 * i + 1, "claim": format!("{} is divisible by 1000", n), "evidence": {doc.to_string(): [{"sentences": [1], "label": "CONTRADICT"}]}, "cited_doc_ids": [doc]}),
            json!({"id": 3 * i + 2, "claim": format!("The number {n} appears on old coins."), "evidence": {}, "cited_doc_ids": []}),
        ];
        for line in lines {
            claims.push_str(&format!("{line}\n"));
        }
        let abstract_ = [
            "Tables list the divisors of whole numbers.".to_string(),
            format!("The table for {n} lists its divisors."),
        ];
        corpus.push_str(&format!(
            "{}\n",
            json!({"doc_id": doc, "title": format!("Divisors of {n}"), "abstract": abstract_})
        ));
    }
    std::fs::write(dir.join("claims.jsonl"), claims).unwrap();
    std::fs::write(dir.join("corpus.jsonl"), corpus).unwrap();
    spec(&format!(
        "name = \"v\"\nprotocol = \"verify\"\ncandidates = 2\n[corpus]\npath = \"{}\"\nid_field = \"doc_id\"\n\
         text_field = \"abstract\"\n[[datasets]]\nloader = \"scifact_labels\"\npath = \"{}\"\nanswer = \"exact\"\n",
        dir.join("corpus.jsonl").display(),
        dir.join("claims.jsonl").display()
    ))
}

/// The snowball spec over `primality.json` (gold "yes") and `graph.json` (gold "no").
pub fn snowball_spec(dir: &Path) -> EvalSpec {
    spec(&format!(
        "name = \"s\"\nprotocol = \"snowball\"\n[[datasets]]\nloader = \"snowball\"\npath = \"{}\"\nanswer = \"yes_no\"\n[[datasets]]\nloader = \"snowball\"\npath = \"{}\"\nanswer = \"yes_no\"\n",
        dir.join("primality.json").display(),
        dir.join("graph.json").display()
    ))
}

/// The blind-spot spec over `arithmetic_bbm.jsonl`.
pub fn blindspot_spec(dir: &Path) -> EvalSpec {
    spec(&format!(
        "name = \"b\"\nprotocol = \"blindspot\"\n[[datasets]]\nloader = \"bbm\"\npath = \"{}\"\nanswer = \"number\"\nrequire_mistake = true\n",
        dir.join("arithmetic_bbm.jsonl").display()
    ))
}
