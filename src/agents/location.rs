//! Reading a mistake location out of a critic's reply: which step of a reasoning trace
//! is the first wrong one, or that none is.
//!
//! Steps are numbered as the trace numbers them (0-based in BIG-Bench Mistake), and the
//! prompt shows those numbers, so a number the critic writes ("Step 3 is wrong",
//! "Thought 3", `{"earliest_wrong_step": 3}`, a bare `3`) is taken as it is. An ordinal
//! ("the third step") counts positions, so it is one less: the third step listed is
//! step 2. A reply that names no step and no "no mistake" is [`Location::Unreadable`],
//! graded wrong either way, as ProcessBench grades a reply it cannot parse.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::structured::extract_json;
pub use crate::trace::Location;

const ORDINALS: [&str; 20] = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
];

struct Patterns {
    no_mistake: Regex,
    numbered: Regex,
    ordinal: Regex,
    numeric_ordinal: Regex,
    bare: Regex,
    leading_no: Regex,
    praise: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        // Literals, exercised by every test of this module.
        let re = |s: &str| Regex::new(s).unwrap_or_else(|e| unreachable!("bad built-in pattern {s}: {e}"));
        let ordinals = ORDINALS.join("|");
        Patterns {
            no_mistake: re(r"(?i)\b(?:no|not any|zero)\s+(?:logical\s+)?(?:mistakes?|errors?|wrong steps?)\b|\ball(?: of)?(?: the)?\s+(?:steps|thoughts)\s+(?:are|were|look)\s+(?:correct|right|fine|valid)|\b(?:the|these)\s+(?:steps|thoughts)\s+(?:are|were)\s+(?:all\s+)?(?:correct|right)|\bevery\s+(?:step|thought)\s+is\s+(?:correct|right)|\bnone of the (?:steps|thoughts) (?:is|are) (?:wrong|incorrect)|\b(?:there is|there's) nothing wrong|^\s*-1\b|\bis (?:entirely |completely |fully )?correct\s*[.!]?\s*$"),
            numbered: re(r"(?i)\b(?:step|thought)\s*(?:number\s*|no\.?\s*|#\s*)?(-?\d+)"),
            ordinal: re(&format!(r"(?i)\b(?:the\s+)?({ordinals})\s+(?:step|thought)\b")),
            numeric_ordinal: re(r"(?i)\b(\d+)(?:st|nd|rd|th)\s+(?:step|thought)\b"),
            bare: re(r"^\s*[(\[]?\s*(-?\d+)\s*[)\].]?\s*$"),
            leading_no: re(r"(?i)^\s*(?:no|none|correct)\b"),
            praise: re(r"(?i)^\s*(?:is|was|looks)\s+(?:correct|right|fine|valid)\b"),
        }
    })
}

/// The location a critic's `reply` gives, for a trace of `steps` steps.
pub fn parse_location(reply: &str, steps: usize) -> Location {
    let within = |n: i64| match n {
        n if n < 0 => Location::NoMistake,
        n if (n as u64) < steps as u64 => Location::Step(n as usize),
        n => Location::PastTheEnd(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    if let Some(v) = extract_json(reply) {
        if let Some(found) = from_json(&v) {
            return found.map_or(Location::NoMistake, within);
        }
    }
    let p = patterns();
    // A step named outright wins over a "no" elsewhere ("No, step 2 is wrong").
    // "Step 2 is correct" names a step without saying it is wrong.
    let numbered = p.numbered.captures_iter(reply).find_map(|c| {
        let whole = c.get(0)?;
        let praised = p.praise.is_match(&reply[whole.end()..]);
        (!praised).then(|| c[1].parse::<i64>().ok().map(|n| (n, whole.start()))).flatten()
    });
    let no_mistake = p.no_mistake.find(reply).map(|m| m.start());
    match (numbered, no_mistake) {
        (Some((n, pos)), Some(at)) if pos < at => return within(n),
        (_, Some(_)) => return Location::NoMistake,
        (Some((n, _)), None) => return within(n),
        (None, None) => {}
    }
    if let Some(c) = p.ordinal.captures(reply) {
        let word = c[1].to_lowercase();
        if let Some(i) = ORDINALS.iter().position(|o| *o == word) {
            return within(i as i64);
        }
    }
    if let Some(n) = p.numeric_ordinal.captures(reply).and_then(|c| c[1].parse::<i64>().ok()) {
        return if n >= 1 { within(n - 1) } else { Location::Unreadable };
    }
    if let Some(n) = p.bare.captures(reply).and_then(|c| c[1].parse::<i64>().ok()) {
        return within(n);
    }
    if p.leading_no.is_match(reply) {
        return Location::NoMistake;
    }
    Location::Unreadable
}

/// A JSON reply's step (`None` inside = no mistake), under the keys critics use.
fn from_json(v: &Value) -> Option<Option<i64>> {
    const KEYS: [&str; 6] = ["earliest_wrong_step", "first_wrong_step", "mistake_index", "mistake", "step", "location"];
    let obj = v.as_object()?;
    for key in KEYS {
        match obj.get(key) {
            Some(Value::Null) => return Some(None),
            Some(Value::Number(n)) => return n.as_i64().map(Some),
            Some(Value::String(s)) => {
                if let Ok(n) = s.trim().parse::<i64>() {
                    return Some(Some(n));
                }
                if s.trim().eq_ignore_ascii_case("none") || s.trim().eq_ignore_ascii_case("no") {
                    return Some(None);
                }
            }
            Some(Value::Bool(false)) => return Some(None),
            _ => {}
        }
    }
    match obj.get("verdict").and_then(Value::as_str) {
        Some("correct") => Some(None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrasings_models_write() {
        let table: [(&str, Location); 24] = [
            ("Step 3 is wrong.", Location::Step(3)),
            ("The mistake is in step 2.", Location::Step(2)),
            ("Thought 4", Location::Step(4)),
            ("the error is in the third step", Location::Step(2)),
            ("The first step is wrong.", Location::Step(0)),
            ("The 2nd step has an error.", Location::Step(1)),
            ("All steps are correct.", Location::NoMistake),
            ("all of the steps are correct", Location::NoMistake),
            ("There are no mistakes.", Location::NoMistake),
            ("No", Location::NoMistake),
            ("No, step 1 is wrong.", Location::Step(1)),
            ("There is no mistake in step 2.", Location::NoMistake),
            ("3", Location::Step(3)),
            ("(1)", Location::Step(1)),
            ("-1", Location::NoMistake),
            (r#"{"earliest_wrong_step": 2, "verdict": "incorrect"}"#, Location::Step(2)),
            (r#"Answer: {"earliest_wrong_step": -1}"#, Location::NoMistake),
            (r#"{"mistake": null}"#, Location::NoMistake),
            (r#"{"verdict": "correct", "problems": []}"#, Location::NoMistake),
            ("Step 9 is wrong.", Location::PastTheEnd(9)),
            ("I think the answer is fine but I am not sure about it", Location::Unreadable),
            ("The reasoning is correct.", Location::NoMistake),
            ("Step 1 is correct, but step 3 is wrong.", Location::Step(3)),
            ("The steps are correct and the answer is (D).", Location::NoMistake),
        ];
        for (reply, want) in table {
            assert_eq!(parse_location(reply, 5), want, "{reply:?}");
        }
    }

    #[test]
    fn a_trace_without_a_mistake_is_graded_right_only_by_no_mistake() {
        let gold = Location::of_gold(None);
        assert_eq!(parse_location("All steps are correct.", 4), gold);
        for wrong in ["Step 0 is wrong.", "Step 7 is wrong.", "hmm"] {
            assert_ne!(parse_location(wrong, 4), gold, "{wrong:?}");
        }
        assert_eq!(Location::of_gold(Some(2)), Location::Step(2));
    }
}
