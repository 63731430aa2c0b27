//! Checkable claims in an answer, found by patterns, each with its character span.
//!
//! Covers what exact tools can settle: primality and divisibility, arithmetic
//! equalities, flight edges and reachability, and the yes/no verdict of an answer to
//! a primality or connectivity question (read against the question itself).

use std::sync::OnceLock;

use regex::{Captures, Regex};
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

/// A claim found in the text: byte span and what it asserts.
type Found = (usize, usize, ClaimKind);

/// One pattern and how its match reads as a claim.
struct Rule {
    re: Regex,
    read: fn(&Captures<'_>) -> Option<Found>,
}

/// Patterns that need the question too.
struct Patterns {
    /// Claims found in the answer alone, in this order.
    rules: Vec<Rule>,
    pronoun_prime: Regex,
    q_prime: Regex,
    q_reach: Regex,
    yes_no: Regex,
    /// An expression the question asks to compute ("What is 12 * 7?", "((3 + 4) * 2) =").
    q_expression: Regex,
    /// The answer's final number ("So the answer is -2116").
    final_number: Regex,
}

/// Byte span of a whole match.
fn span(c: &Captures<'_>) -> (usize, usize) {
    c.get(0).map(|m| (m.start(), m.end())).unwrap_or_default()
}

fn digits(s: &str) -> String {
    s.replace(',', "")
}

/// The claim a whole match states.
fn whole(c: &Captures<'_>, kind: ClaimKind) -> Option<Found> {
    let (start, end) = span(c);
    Some((start, end, kind))
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        // The patterns are literals checked by the tests below.
        let re = |s: &str| Regex::new(s).unwrap_or_else(|e| unreachable!("bad built-in pattern {s}: {e}"));
        let rule = |s: &str, read: fn(&Captures<'_>) -> Option<Found>| Rule { re: re(s), read };
        Patterns {
            rules: vec![
                // "7411 is (not) a prime", "7411 is indeed a prime number"
                rule(r"(?i)\b(\d+(?:,\d{3})*)\s+is\s+(?:(?:indeed|actually|definitely|certainly|really|also|therefore|thus|clearly)\s+)?(not\s+)?(?:a\s+)?prime\b", |c| {
                    whole(c, ClaimKind::Primality { n: digits(&c[1]), prime: c.get(2).is_none() })
                }),
                // "7413 is composite", "5471 is indeed a composite number"
                rule(r"(?i)\b(\d+(?:,\d{3})*)\s+is\s+(?:(?:indeed|actually|definitely|certainly|really|also|therefore|thus|clearly)\s+)?(?:a\s+)?composite\b", |c| {
                    whole(c, ClaimKind::Primality { n: digits(&c[1]), prime: false })
                }),
                // "7411 is (not) divisible by 3"
                rule(r"(?i)\b(\d+(?:,\d{3})*)\s+is\s+(not\s+)?(?:evenly\s+)?divisible\s+by\s+(\d+(?:,\d{3})*)", |c| {
                    let (n, divisor) = (digits(&c[1]), digits(&c[3]));
                    whole(c, ClaimKind::Divisibility { n, divisor, divides: c.get(2).is_none() })
                }),
                // "3 is (not) a factor of 7413"
                rule(r"(?i)\b(\d+(?:,\d{3})*)\s+is\s+(not\s+)?a\s+factor\s+of\s+(\d+(?:,\d{3})*)", |c| {
                    let (n, divisor) = (digits(&c[3]), digits(&c[1]));
                    whole(c, ClaimKind::Divisibility { n, divisor, divides: c.get(2).is_none() })
                }),
                // "12 × 3 = 38"
                rule(r"(\(?\d[\d,.]*(?:\s*[-+*/×x^]\s*\(?\d[\d,.]*\)?)+)\s*=\s*(-?\d+(?:,\d{3})*(?:\.\d+)?)", |c| {
                    whole(c, equation(&c[1], &c[2]))
                }),
                // "7411 = 7 * 1059": the span runs from the value to the expression.
                rule(r"(?:^|[^\d.*/×x^+-])\s*(\d+(?:,\d{3})*)\s*=\s*(\(?\d[\d.]*(?:\s*[-+*/×x^]\s*\(?\d[\d.]*\)?)+)", |c| {
                    let (v, e) = (c.get(1)?, c.get(2)?);
                    Some((v.start(), e.end(), equation(e.as_str(), v.as_str())))
                }),
                // "there is (a|no) flight from city A to city B"
                rule(r"(?i)there\s+is\s+(a|no)\s+(?:direct\s+)?flight\s+from\s+(?:city\s+)?(\w+)\s+to\s+(?:city\s+)?(\w+)", |c| {
                    let exists = c[1].eq_ignore_ascii_case("a");
                    whole(c, ClaimKind::Edge { from: c[2].to_string(), to: c[3].to_string(), exists })
                }),
                // "you can (not) fly from A to B"
                rule(r"(?i)\b(can|cannot|can't|could|couldn't)\s+(?:fly|travel|get|go)\s+from\s+(?:city\s+)?(\w+)\s+to\s+(?:city\s+)?(\w+)", |c| {
                    let reachable = matches!(c[1].to_lowercase().as_str(), "can" | "could");
                    whole(c, ClaimKind::Reachability { from: c[2].to_string(), to: c[3].to_string(), reachable })
                }),
            ],
            pronoun_prime: re(r"(?i)\b(?:it|this number|the number)\s+is\s+(not\s+)?(?:a\s+)?prime\b"),
            q_prime: re(r"(?i)\bis\s+(\d+(?:,\d{3})*)\s+a\s+prime(?:\s+number)?\s*\?"),
            q_reach: re(r"(?i)from\s+city\s+(\w+)\s+to\s+city\s+(\w+)\s*\?"),
            yes_no: re(r"(?i)^\W*(yes|no)\b"),
            q_expression: re(r"(?i)(?:what\s+is|calculate|compute|evaluate)\s+([-(\d][-\d\s()+*/×x.,]*[\d)])\s*\?|^\s*([-(\d][-\d\s()+*/×.]*[\d)])\s*=\s*\??\s*$"),
            final_number: re(r"(?i)\bthe\s+(?:final\s+)?answer\s+is:?\s*(-?\d+(?:,\d{3})*(?:\.\d+)?)"),
        }
    })
}

/// An arithmetic claim: `expression` equals `value` (`x` read as multiplication).
fn equation(expression: &str, value: &str) -> ClaimKind {
    ClaimKind::Arithmetic { expression: digits(expression).replace('x', "*").trim().to_string(), value: digits(value) }
}

/// Whether the text just before a match makes it a question, not an assertion.
fn is_conditional(before: &str) -> bool {
    let tail: String = before.chars().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect();
    let tail = tail.to_lowercase();
    let words: Vec<&str> = tail.split_whitespace().collect();
    matches!(words.last(), Some(&"if") | Some(&"whether") | Some(&"check") | Some(&"determine"))
}

/// Claims that refer to the question: "it is (not) prime" means the question's
/// number, and the answer's leading yes/no is its verdict on the question.
fn question_claims(p: &Patterns, question: &str, answer: &str, out: &mut Vec<Found>) {
    if let Some(q) = p.q_prime.captures(question) {
        for c in p.pronoun_prime.captures_iter(answer) {
            let m = span(&c);
            out.push((m.0, m.1, ClaimKind::Primality { n: digits(&q[1]), prime: c.get(1).is_none() }));
        }
    }
    // The final number of an answer to "compute this" is a claim about the question's expression.
    if let Some(q) = p.q_expression.captures(question.trim()) {
        if let (Some(expr), Some(f)) = (q.get(1).or(q.get(2)), p.final_number.captures_iter(answer).last()) {
            let (start, end) = span(&f);
            out.push((start, end, equation(expr.as_str(), &f[1])));
        }
    }
    let Some(yn) = p.yes_no.captures(answer) else { return };
    let m = yn.get(1).map(|m| (m.start(), m.end())).unwrap_or_default();
    let yes = yn[1].eq_ignore_ascii_case("yes");
    if let Some(q) = p.q_prime.captures(question) {
        out.push((m.0, m.1, ClaimKind::Primality { n: digits(&q[1]), prime: yes }));
    } else if let Some(q) = p.q_reach.captures(question) {
        out.push((m.0, m.1, ClaimKind::Reachability { from: q[1].to_string(), to: q[2].to_string(), reachable: yes }));
    }
}

/// Find the checkable claims of `answer`, given the `question` it answers.
pub fn extract_claims(question: &str, answer: &str) -> Vec<Claim> {
    let p = patterns();
    let mut out: Vec<Found> = Vec::new();
    for rule in &p.rules {
        out.extend(rule.re.captures_iter(answer).filter_map(|c| (rule.read)(&c)));
    }
    question_claims(p, question, answer, &mut out);
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

/// The answer's verdict on a yes/no question whose subject the patterns know ("Is
/// 7411 a prime number?", "... from city A to city D?"): its first claim about that
/// subject, a leading yes/no included. `None` for other questions, or when the answer
/// states nothing about the subject.
pub fn stance(question: &str, answer: &str) -> Option<bool> {
    let p = patterns();
    let prime = p.q_prime.captures(question).map(|q| digits(&q[1]));
    let reach = p.q_reach.captures(question).map(|q| (q[1].to_string(), q[2].to_string()));
    if prime.is_none() && reach.is_none() {
        return None;
    }
    extract_claims(question, answer).into_iter().find_map(|c| match c.kind {
        ClaimKind::Primality { n, prime: p } if prime.as_ref() == Some(&n) => Some(p),
        ClaimKind::Reachability { from, to, reachable } => {
            reach.as_ref().filter(|(f, t)| *f == from && *t == to).map(|_| reachable)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(q: &str, a: &str) -> Vec<ClaimKind> {
        extract_claims(q, a).into_iter().map(|c| c.kind).collect()
    }

    #[test]
    fn a_final_answer_is_a_claim_about_the_questions_expression() {
        let want = |e: &str, v: &str| vec![ClaimKind::Arithmetic { expression: e.into(), value: v.into() }];
        assert_eq!(kinds("What is 17 * 23?", "So the answer is 399."), want("17 * 23", "399"));
        assert_eq!(kinds("((3 + 4) * -2) =", "Step by step... the answer is -14"), want("((3 + 4) * -2)", "-14"));
        assert_eq!(kinds("What is the capital of France?", "The answer is 12."), vec![]);
        let checked = extract_claims("What is 17 * 23?", "A. Then B. So the final answer is 391");
        assert_eq!(checked[0].text, "the final answer is 391");
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
    fn adverbs_do_not_hide_a_primality_claim() {
        // Seen from the embedded model.
        let answer = "A prime number has no divisors but 1 and itself. In this case, 7411 is indeed a prime number.";
        assert_eq!(
            kinds("Is 7411 a prime number?", answer),
            vec![ClaimKind::Primality { n: "7411".into(), prime: true }]
        );
        assert_eq!(
            kinds("", "7413 is actually not a prime."),
            vec![ClaimKind::Primality { n: "7413".into(), prime: false }]
        );
    }

    #[test]
    fn nothing_checkable() {
        assert!(extract_claims("Who wrote Hamlet?", "Shakespeare wrote it around 1600.").is_empty());
    }
}
