//! Checkable claims in an answer, found by patterns, each with its character span.
//!
//! Covers what exact tools can settle: primality and divisibility, arithmetic
//! equalities, flight edges and reachability, and the yes/no verdict of an answer to
//! a primality or connectivity question (read against the question itself).

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// What a claim asserts, in a form a tool can check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClaimKind {
    /// `n` is (or is not) prime.
    Primality {
        /// The number.
        n: String,
        /// What the answer says.
        prime: bool,
    },
    /// `divisor` divides `n` (or not).
    Divisibility {
        /// The number.
        n: String,
        /// The divisor.
        divisor: String,
        /// What the answer says.
        divides: bool,
    },
    /// `expression` equals `value`.
    Arithmetic {
        /// Left-hand side.
        expression: String,
        /// Claimed value.
        value: String,
    },
    /// A direct flight from `from` to `to` exists (or not).
    Edge {
        /// Origin.
        from: String,
        /// Destination.
        to: String,
        /// What the answer says.
        exists: bool,
    },
    /// The answer takes no clear stand on whether the question's number `n` is prime;
    /// checked so the evidence is shown, judged `unchecked`.
    NoVerdict {
        /// The question's number.
        n: String,
    },
    /// `to` can (or cannot) be reached from `from`.
    Reachability {
        /// Origin.
        from: String,
        /// Destination.
        to: String,
        /// What the answer says.
        reachable: bool,
    },
}

/// A claim with its place in the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The claim's text as written.
    pub text: String,
    /// Start, in characters, in the answer.
    pub start: usize,
    /// End (exclusive), in characters.
    pub end: usize,
    /// What it asserts.
    pub kind: ClaimKind,
}

struct Patterns {
    prime: Regex,
    composite: Regex,
    divisible: Regex,
    factor: Regex,
    equation: Regex,
    equation_rev: Regex,
    edge: Regex,
    reach: Regex,
    q_prime: Regex,
    pronoun_prime: Regex,
    q_reach: Regex,
    yes_no: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        // The patterns are literals checked by the tests below.
        let re = |s: &str| Regex::new(s).unwrap_or_else(|e| unreachable!("bad built-in pattern {s}: {e}"));
        Patterns {
            prime: re(r"(?i)\b(\d+(?:,\d{3})*)\s+is\s+(not\s+)?(?:a\s+)?prime\b"),
            composite: re(r"(?i)\b(\d+(?:,\d{3})*)\s+is\s+(?:a\s+)?composite\b"),
            divisible: re(r"(?i)\b(\d+(?:,\d{3})*)\s+is\s+(not\s+)?(?:evenly\s+)?divisible\s+by\s+(\d+(?:,\d{3})*)"),
            factor: re(r"(?i)\b(\d+(?:,\d{3})*)\s+is\s+(not\s+)?a\s+factor\s+of\s+(\d+(?:,\d{3})*)"),
            equation: re(r"(\(?\d[\d,.]*(?:\s*[-+*/×x^]\s*\(?\d[\d,.]*\)?)+)\s*=\s*(-?\d+(?:,\d{3})*(?:\.\d+)?)"),
            equation_rev: re(r"(?:^|[^\d.*/×x^+-])\s*(\d+(?:,\d{3})*)\s*=\s*(\(?\d[\d.]*(?:\s*[-+*/×x^]\s*\(?\d[\d.]*\)?)+)"),
            edge: re(r"(?i)there\s+is\s+(a|no)\s+(?:direct\s+)?flight\s+from\s+(?:city\s+)?(\w+)\s+to\s+(?:city\s+)?(\w+)"),
            reach: re(r"(?i)\b(can|cannot|can't|could|couldn't)\s+(?:fly|travel|get|go)\s+from\s+(?:city\s+)?(\w+)\s+to\s+(?:city\s+)?(\w+)"),
            pronoun_prime: re(r"(?i)\b(?:it|this number|the number)\s+is\s+(not\s+)?(?:a\s+)?prime\b"),
            q_prime: re(r"(?i)\bis\s+(\d+(?:,\d{3})*)\s+a\s+prime(?:\s+number)?\s*\?"),
            q_reach: re(r"(?i)from\s+city\s+(\w+)\s+to\s+city\s+(\w+)\s*\?"),
            yes_no: re(r"(?i)^\W*(yes|no)\b"),
        }
    })
}

/// Whether the text just before a match makes it a question, not an assertion.
fn is_conditional(before: &str) -> bool {
    let tail: String = before.chars().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect();
    let tail = tail.to_lowercase();
    let words: Vec<&str> = tail.split_whitespace().collect();
    matches!(words.last(), Some(&"if") | Some(&"whether") | Some(&"check") | Some(&"determine"))
}

/// Byte span of a whole match.
fn span(c: &regex::Captures<'_>) -> (usize, usize) {
    c.get(0).map(|m| (m.start(), m.end())).unwrap_or_default()
}

fn digits(s: &str) -> String {
    s.replace(',', "")
}

/// Find the checkable claims of `answer`, given the `question` it answers.
pub fn extract_claims(question: &str, answer: &str) -> Vec<Claim> {
    let p = patterns();
    let mut out: Vec<(usize, usize, ClaimKind)> = Vec::new();
    for c in p.prime.captures_iter(answer) {
        let m = span(&c);
        out.push((m.0, m.1, ClaimKind::Primality { n: digits(&c[1]), prime: c.get(2).is_none() }));
    }
    for c in p.composite.captures_iter(answer) {
        let m = span(&c);
        out.push((m.0, m.1, ClaimKind::Primality { n: digits(&c[1]), prime: false }));
    }
    for c in p.divisible.captures_iter(answer) {
        let m = span(&c);
        out.push((
            m.0,
            m.1,
            ClaimKind::Divisibility { n: digits(&c[1]), divisor: digits(&c[3]), divides: c.get(2).is_none() },
        ));
    }
    for c in p.factor.captures_iter(answer) {
        let m = span(&c);
        out.push((
            m.0,
            m.1,
            ClaimKind::Divisibility { n: digits(&c[3]), divisor: digits(&c[1]), divides: c.get(2).is_none() },
        ));
    }
    for c in p.equation.captures_iter(answer) {
        let m = span(&c);
        let expression = digits(&c[1]).replace('x', "*");
        out.push((m.0, m.1, ClaimKind::Arithmetic { expression: expression.trim().to_string(), value: digits(&c[2]) }));
    }
    for c in p.equation_rev.captures_iter(answer) {
        let (Some(v), Some(e)) = (c.get(1), c.get(2)) else { continue };
        let expression = digits(e.as_str()).replace('x', "*");
        out.push((
            v.start(),
            e.end(),
            ClaimKind::Arithmetic { expression: expression.trim().to_string(), value: digits(v.as_str()) },
        ));
    }
    for c in p.edge.captures_iter(answer) {
        let m = span(&c);
        out.push((
            m.0,
            m.1,
            ClaimKind::Edge { from: c[2].to_string(), to: c[3].to_string(), exists: c[1].eq_ignore_ascii_case("a") },
        ));
    }
    for c in p.reach.captures_iter(answer) {
        let m = span(&c);
        let can = matches!(c[1].to_lowercase().as_str(), "can" | "could");
        out.push((m.0, m.1, ClaimKind::Reachability { from: c[2].to_string(), to: c[3].to_string(), reachable: can }));
    }
    // "It is (not) prime" refers to the question's number.
    if let Some(q) = p.q_prime.captures(question) {
        for c in p.pronoun_prime.captures_iter(answer) {
            let m = span(&c);
            out.push((m.0, m.1, ClaimKind::Primality { n: digits(&q[1]), prime: c.get(1).is_none() }));
        }
    }
    // The answer's own yes/no verdict, read against the question.
    if let Some(yn) = p.yes_no.captures(answer) {
        let m = yn.get(1).map(|m| (m.start(), m.end())).unwrap_or_default();
        let yes = yn[1].eq_ignore_ascii_case("yes");
        if let Some(q) = p.q_prime.captures(question) {
            out.push((m.0, m.1, ClaimKind::Primality { n: digits(&q[1]), prime: yes }));
        } else if let Some(q) = p.q_reach.captures(question) {
            out.push((
                m.0,
                m.1,
                ClaimKind::Reachability { from: q[1].to_string(), to: q[2].to_string(), reachable: yes },
            ));
        }
    }
    // "if 7411 is a prime", "whether ..." ask rather than assert.
    out.retain(|(s, _, _)| !is_conditional(&answer[..*s]));
    // A primality question the answer never settles still gets its number checked.
    if let Some(q) = p.q_prime.captures(question) {
        let n = digits(&q[1]);
        let settled = out.iter().any(|(_, _, k)| matches!(k, ClaimKind::Primality { n: m, .. } if *m == n));
        if !settled {
            out.push((0, 0, ClaimKind::NoVerdict { n }));
        }
    }
    out.sort_by_key(|(s, e, _)| (*s, *e));
    out.dedup_by(|a, b| a.2 == b.2);
    out.into_iter()
        .map(|(s, e, kind)| Claim {
            text: answer[s..e].to_string(),
            start: answer[..s].chars().count(),
            end: answer[..e].chars().count(),
            kind,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(q: &str, a: &str) -> Vec<ClaimKind> {
        extract_claims(q, a).into_iter().map(|c| c.kind).collect()
    }

    #[test]
    fn primality_and_divisibility() {
        let got = kinds("Is 7411 a prime number?", "No, 7411 is not a prime number because 7411 is divisible by 3.");
        assert_eq!(
            got,
            vec![
                ClaimKind::Primality { n: "7411".into(), prime: false },
                ClaimKind::Divisibility { n: "7411".into(), divisor: "3".into(), divides: true },
            ],
            "the verdict 'No' and the sentence say the same, so one primality claim"
        );
        let got = kinds("", "3 is a factor of 7,413, and 7413 is composite.");
        assert!(got.contains(&ClaimKind::Divisibility { n: "7413".into(), divisor: "3".into(), divides: true }));
        assert!(got.contains(&ClaimKind::Primality { n: "7413".into(), prime: false }));
    }

    #[test]
    fn arithmetic_and_spans() {
        let answer = "Step 1: 12 × 3 = 38. Step 2: 38 + 4 = 42.";
        let claims = extract_claims("", answer);
        assert_eq!(claims.len(), 2);
        assert_eq!(claims[0].kind, ClaimKind::Arithmetic { expression: "12 × 3".into(), value: "38".into() });
        let chars: Vec<char> = answer.chars().collect();
        for c in &claims {
            assert_eq!(chars[c.start..c.end].iter().collect::<String>(), c.text);
        }
    }

    #[test]
    fn flights() {
        let q = "There is a flight from city F to city L\n\nQuestion: Is there a series of flights that goes from city F to city I?";
        let got = kinds(q, "Yes. There is a flight from city L to city I, so you can fly from F to I.");
        assert!(got.contains(&ClaimKind::Reachability { from: "F".into(), to: "I".into(), reachable: true }));
        assert!(got.contains(&ClaimKind::Edge { from: "L".into(), to: "I".into(), exists: true }));
    }

    #[test]
    fn unsettled_primality_questions_are_still_checked() {
        assert_eq!(
            kinds("Is 7411 a prime number?", "Let me think about 7411."),
            vec![ClaimKind::NoVerdict { n: "7411".into() }]
        );
        assert_eq!(
            kinds("Is 7411 a prime number?", "Well, it is not a prime."),
            vec![ClaimKind::Primality { n: "7411".into(), prime: false }]
        );
    }

    #[test]
    fn conditionals_are_not_claims_and_reversed_equations_are() {
        let got = kinds("Is 7411 a prime number?", "To determine if 7411 is a prime number: 7411 = 7 * 1059 *");
        assert_eq!(
            got,
            vec![
                ClaimKind::NoVerdict { n: "7411".into() },
                ClaimKind::Arithmetic { expression: "7 * 1059".into(), value: "7411".into() }
            ]
        );
    }

    #[test]
    fn nothing_checkable() {
        assert!(extract_claims("Who wrote Hamlet?", "Shakespeare wrote it around 1600.").is_empty());
    }
}
