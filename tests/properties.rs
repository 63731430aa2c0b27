//! Property tests (arbtest, each bounded in time; a failure prints the seed that
//! reproduces it, to be kept below as a regression case): parsers never panic on model
//! output, spans stay on character boundaries, exact tools agree with independent
//! computations, traces round-trip, and passages are exact and bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arbtest::arbitrary::{Result as ArbResult, Unstructured};
use num_bigint::BigInt;
use recheck::{
    agents::{critic::extract_json, decomposer::locate, extract_claims, parse_location, AgentSet, Location},
    corpus::{split_passages, Document, PassageConfig},
    eval::EvalSpec,
    tools::{evaluate_expression, is_prime},
    trace::{run_kind, TraceStore},
};
use serde_json::json;

const BUDGET_MS: u64 = 300;

/// Text that looks like model output: words, numbers, operators and punctuation that
/// the claim patterns look for, with some non-ASCII characters.
fn model_text(u: &mut Unstructured<'_>) -> ArbResult<String> {
    const PIECES: [&str; 24] = [
        "7411",
        "is",
        "not",
        "a",
        "prime",
        "divisible",
        "by",
        "3",
        "=",
        "*",
        "+",
        "(",
        ")",
        "12",
        "Yes",
        "No",
        "there is a flight from city",
        "A",
        "to",
        "city B",
        ".",
        ",",
        "é",
        "∑",
    ];
    let n = u.int_in_range(0..=40)?;
    let mut s = String::new();
    for _ in 0..n {
        if u.ratio(1, 8)? {
            s.push(u.arbitrary::<char>()?);
        } else {
            s.push_str(u.choose(&PIECES)?);
        }
        s.push(if u.ratio(1, 6)? { '\n' } else { ' ' });
    }
    Ok(s)
}

#[test]
fn claim_extraction_never_panics_and_spans_match_the_text() {
    arbtest::arbtest(|u| {
        let question = if u.arbitrary()? { "Is 7411 a prime number?".to_string() } else { model_text(u)? };
        let answer = model_text(u)?;
        let chars: Vec<char> = answer.chars().collect();
        for claim in extract_claims(&question, &answer) {
            assert!(claim.start <= claim.end && claim.end <= chars.len(), "{claim:?}");
            assert_eq!(chars[claim.start..claim.end].iter().collect::<String>(), claim.text);
        }
        // Critic JSON and the decomposer's quotes: any text, no panic, spans inside.
        let _ = extract_json(&answer);
        let (s, e) = locate(&answer, &model_text(u)?, &model_text(u)?);
        assert!(s <= e && e <= chars.len());
        Ok(())
    })
    .budget_ms(BUDGET_MS);
}

/// A critic reply naming step `step` (as the trace numbers it) or no mistake, in one
/// of the phrasings models write, with noise around it that names no step.
fn location_reply(u: &mut Unstructured<'_>, step: Option<usize>) -> ArbResult<String> {
    const ORDINALS: [&str; 8] = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"];
    const LEAD: [&str; 4] = ["", "Let me check. ", "After reviewing the reasoning: ", "Answer:\n"];
    const TAIL: [&str; 3] = ["", " The rest follows from it.", "\nI am fairly sure."];
    let core = match step {
        None => u
            .choose(&[
                "All steps are correct.",
                "There are no mistakes.",
                "No",
                "No mistakes found.",
                "-1",
                r#"{"earliest_wrong_step": -1}"#,
                r#"{"verdict": "correct", "earliest_wrong_step": -1, "problems": []}"#,
                "Every step is correct.",
            ])?
            .to_string(),
        Some(k) => match u.int_in_range(0..=6)? {
            0 => format!("Step {k} is wrong."),
            1 => format!("The mistake is in step {k}."),
            2 => format!("Thought {k}"),
            3 => format!("{k}"),
            4 => format!(r#"{{"earliest_wrong_step": {k}, "verdict": "incorrect"}}"#),
            5 if k < ORDINALS.len() => format!("The error is in the {} step.", ORDINALS[k]),
            _ => format!("Step number {k} has an error."),
        },
    };
    // A bare number or "No" is read only when it is the whole reply.
    let bare = matches!(core.as_str(), "No" | "-1") || core.parse::<usize>().is_ok();
    if bare {
        return Ok(core);
    }
    Ok(format!("{}{core}{}", u.choose(&LEAD)?, u.choose(&TAIL)?))
}

#[test]
fn mistake_locations_are_read_from_every_phrasing() {
    arbtest::arbtest(|u| {
        let steps = u.int_in_range(1..=8)?;
        let gold = if u.ratio(1, 3)? { None } else { Some(u.int_in_range(0..=steps - 1)?) };
        let reply = location_reply(u, gold)?;
        assert_eq!(parse_location(&reply, steps), Location::of_gold(gold), "{reply:?} ({steps} steps)");
        // Past the last step is never a step of the trace.
        let beyond = steps + u.int_in_range(0..=3)?;
        let past = location_reply(u, Some(beyond))?;
        assert!(parse_location(&past, steps).step().is_none(), "{past:?} ({steps} steps)");
        // Any text: no panic, and a step it reads is inside the trace.
        let noise = model_text(u)?;
        assert!(parse_location(&noise, steps).step().is_none_or(|s| s < steps), "{noise:?}");
        Ok(())
    })
    .budget_ms(BUDGET_MS);
}

/// A random expression over small integers, as text and as its exact value.
fn expression(u: &mut Unstructured<'_>, depth: u32) -> ArbResult<(String, BigInt)> {
    if depth == 0 || u.ratio(1, 3)? {
        let n: i64 = u.int_in_range(0..=99_999)?;
        return Ok((n.to_string(), BigInt::from(n)));
    }
    let (a, x) = expression(u, depth - 1)?;
    let (b, y) = expression(u, depth - 1)?;
    Ok(match u.int_in_range(0..=2)? {
        0 => (format!("({a} + {b})"), x + y),
        1 => (format!("({a} - {b})"), x - y),
        _ => (format!("({a} * {b})"), x * y),
    })
}

#[test]
fn arithmetic_agrees_with_an_independent_big_integer_evaluation() {
    arbtest::arbtest(|u| {
        let (text, value) = expression(u, 5)?;
        let got = evaluate_expression(&text).unwrap();
        assert!(got.is_integer(), "{text}");
        assert_eq!(got.to_integer(), value, "{text}");
        Ok(())
    })
    .budget_ms(BUDGET_MS);
}

fn trial_division(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

#[test]
fn primality_agrees_with_trial_division_below_ten_million() {
    arbtest::arbtest(|u| {
        let n: u64 = u.int_in_range(0..=9_999_999)?;
        assert_eq!(is_prime(u128::from(n)), trial_division(n), "{n}");
        Ok(())
    })
    .budget_ms(BUDGET_MS);
    // Carmichael numbers fool the Fermat test; not this one.
    for n in [561u128, 1105, 1729, 2465, 2821, 6601, 8911, 41041, 825265, 321197185, 5394826801, 232250619601] {
        assert!(!is_prime(n), "{n}");
    }
    // Known large primes.
    for p in [(1u128 << 61) - 1, (1u128 << 89) - 1, (1u128 << 107) - 1, (1u128 << 127) - 1] {
        assert!(is_prime(p), "{p}");
    }
}

#[test]
fn passages_are_exact_and_within_the_limit() {
    arbtest::arbtest(|u| {
        let mut text = String::new();
        for _ in 0..u.int_in_range(0..=60)? {
            match u.int_in_range(0..=3)? {
                0 => text.push_str(&"w".repeat(u.int_in_range(1..=300)?)),
                1 => text.push_str(". "),
                2 => text.push(u.arbitrary::<char>()?),
                _ => text.push_str("Ünïcode words here "),
            }
        }
        let doc = Document { id: "d".into(), title: String::new(), text, sentences: None };
        let config = PassageConfig { max_chars: u.int_in_range(1..=200)?, overlap_sentences: u.int_in_range(0..=2)? };
        let chars: Vec<char> = doc.text.chars().collect();
        for p in split_passages(&doc, &config) {
            assert_eq!(chars[p.start..p.end].iter().collect::<String>(), p.text);
            assert!(p.text.chars().count() <= config.max_chars, "{} > {}", p.text.chars().count(), config.max_chars);
        }
        Ok(())
    })
    .budget_ms(BUDGET_MS);
}

#[test]
fn traces_round_trip_and_cut_files_are_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    arbtest::arbtest(|u| {
        let texts: Vec<String> = (0..u.int_in_range(1..=4)?).map(|_| u.arbitrary()).collect::<ArbResult<_>>()?;
        let cut_at: usize = u.int_in_range(1..=3)?;
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let a = TraceStore::open(dir.path().join("a")).unwrap();
            let run = a.create_run(run_kind::ASK, json!({ "question": texts[0] }), json!({}), None).await.unwrap();
            let recorder = recheck::trace::RunRecorder::new(a.clone(), run.id, 0);
            for t in &texts {
                recorder.event("solver", "text", json!({ "text": t, "n": t.len() as f64 / 3.0 })).await.unwrap();
            }
            let (first, second) = (dir.path().join("1.jsonl"), dir.path().join("2.jsonl"));
            a.export_jsonl(&first, &[]).unwrap();
            let b = TraceStore::open(dir.path().join("b")).unwrap();
            b.import_jsonl(&first).unwrap();
            b.export_jsonl(&second, &[]).unwrap();
            assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap());
            // The same file cut at a line end, inside the run's steps: refused, nothing written.
            let text = std::fs::read_to_string(&first).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            if lines.len() > cut_at {
                let cut = dir.path().join("cut.jsonl");
                std::fs::write(&cut, lines[..lines.len() - cut_at].join("\n") + "\n").unwrap();
                let c = TraceStore::temporary().unwrap();
                assert!(c.import_jsonl(&cut).is_err());
                assert!(c.list_runs().unwrap().is_empty());
            }
        });
        Ok(())
    })
    .budget_ms(BUDGET_MS);
}

/// A TOML value of some kind: integers (huge, negative), floats (nan, inf), strings, booleans.
fn toml_value(u: &mut Unstructured<'_>) -> ArbResult<String> {
    Ok(match u.int_in_range(0..=5)? {
        0 => u.arbitrary::<i64>()?.to_string(),
        1 => u.int_in_range(-3..=300)?.to_string(),
        2 => {
            let x: f64 = u.arbitrary()?;
            if x.is_nan() {
                "nan".into()
            } else if x.is_infinite() {
                if x > 0.0 {
                    "inf".into()
                } else {
                    "-inf".into()
                }
            } else {
                format!("{x:?}")
            }
        }
        3 => format!("{:?}", u.arbitrary::<String>()?),
        4 => "true".into(),
        _ => format!("{}.{}", u.int_in_range(0..=3)?, u.int_in_range(0..=99)?),
    })
}

#[test]
fn specs_with_random_values_load_or_name_the_field() {
    const FIELDS: [&str; 8] = [
        "rounds",
        "max_tokens",
        "candidates",
        "max_calls",
        "temperature",
        "temperature_step",
        "temperature_cap",
        "seed",
    ];
    arbtest::arbtest(|u| {
        let field = *u.choose(&FIELDS)?;
        let value = toml_value(u)?;
        let text = format!(
            "name = \"x\"\nprotocol = \"friction\"\n{field} = {value}\n[[datasets]]\nloader = \"jsonl\"\npath = \"a\"\n"
        );
        match EvalSpec::parse(&text) {
            Ok(spec) => {
                assert!((1..=100).contains(&spec.rounds) && (0.0..=2.0).contains(&spec.temperature), "{text}");
                assert!(spec.max_calls >= 1 && spec.candidates >= 1, "{text}");
            }
            Err(e) => assert!(e.to_string().contains(field), "{field} = {value}: {e}"),
        }
        Ok(())
    })
    .budget_ms(BUDGET_MS);
}

#[test]
fn agent_configs_with_random_values_load_or_name_the_file() {
    const FIELDS: [&str; 7] =
        ["temperature", "max_tokens", "max_reasks", "votes", "keep_confidence", "prompt", "model"];
    let dir = tempfile::tempdir().unwrap();
    arbtest::arbtest(|u| {
        let field = *u.choose(&FIELDS)?;
        let value = toml_value(u)?;
        std::fs::write(dir.path().join("critic.toml"), format!("{field} = {value}\n")).unwrap();
        match AgentSet::load(Some(dir.path()), None) {
            Err(e) => assert!(e.to_string().contains("critic.toml"), "{field} = {value}: {e}"),
            Ok(agents) => {
                let c = &agents.critic;
                assert!(c.temperature.is_none_or(|t| (0.0..=2.0).contains(&t)), "{field} = {value}");
                assert!(c.keep_confidence.is_none_or(|k| (0.0..=1.0).contains(&k)), "{field} = {value}");
                assert!(c.max_tokens != Some(0) && c.votes != Some(0), "{field} = {value}");
            }
        }
        Ok(())
    })
    .budget_ms(BUDGET_MS);
}

#[test]
fn cli_numbers_are_taken_or_refused_naming_the_flag() {
    const FLAGS: [&str; 7] =
        ["--temperature", "--temperature-step", "--max-calls", "--rounds", "--timeout", "--retries", "--samples"];
    let home = tempfile::tempdir().unwrap();
    arbtest::arbtest(|u| {
        let flag = *u.choose(&FLAGS)?;
        let value = match u.int_in_range(0..=4)? {
            0 => u.arbitrary::<i64>()?.to_string(),
            1 => u.int_in_range(-2..=40)?.to_string(),
            2 => format!("{:?}", u.arbitrary::<f64>()?),
            3 => (*u.choose(&["nan", "NaN", "inf", "-inf", "1e39", "", "ten", "0x10"])?).to_string(),
            _ => format!("{}.{}", u.int_in_range(0..=3)?, u.int_in_range(0..=9)?),
        };
        // `--flag=value`, so a negative value is the flag's, not another flag.
        let arg = format!("{flag}={value}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_recheck"))
            .args(["ask", "Is 7 a prime number?", "--model", "sim:accuracy=1", "--no-decompose", "--json", &arg])
            .env("RECHECK_HOME", home.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {}
            Some(2) => assert!(err.contains(flag), "{flag} {value:?}: {err}"),
            other => panic!("{flag} {value:?}: exit {other:?}: {err}"),
        }
        Ok(())
    })
    .budget_ms(2 * BUDGET_MS);
    // Found by this property: `--timeout 3.9e32` panicked (too large for a Duration).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_recheck"))
        .args(["ask", "hi", "--model", "sim", "--no-decompose", "--timeout=3.937513923271575e32"])
        .env("RECHECK_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
