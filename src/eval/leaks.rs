//! Whether feedback gives the gold answer away, found exactly: a number equal to it, an
//! arithmetic expression that evaluates to it (the exact arithmetic tool's evaluator:
//! "the correct final answer is (11 * 8)" gives 88 away), or an ordered run of the gold
//! word list (word sorting). Each leak names what matched, for the trace.

use std::sync::OnceLock;

use num_rational::BigRational;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::answers::{clean_number, normalize_gold, number, tokens, AnswerKind};
use crate::tools::evaluate_expression;

/// A list of at least this many gold words, in the gold order, gives the order away.
const MIN_RUN: usize = 3;

/// How feedback stated the gold answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakKind {
    /// The number itself.
    Number,
    /// An arithmetic expression whose exact value is the gold number.
    Expression,
    /// The gold words, or a run of at least three of them, in the gold order.
    WordList,
    /// The gold option ("(B)") or the gold answer as written.
    Verbatim,
}

/// One statement of the gold answer in a text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leak {
    /// How it was stated.
    pub kind: LeakKind,
    /// The text that stated it.
    pub matched: String,
    /// Its byte range in the text (number and expression leaks; a word list is masked
    /// word by word).
    #[serde(skip)]
    range: Option<(usize, usize)>,
}

fn expression() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // Digits, operators, parentheses and spaces between a digit or `(` and a digit or `)`.
    RE.get_or_init(|| Regex::new(r"[\d(][\d\s+\-−*/×÷·^().,]*[\d)]").unwrap_or_else(|_| unreachable!()))
}

/// Every statement of `gold` in `text`, in order. An expression `question` itself
/// states ("What is 11 * 8?") gives nothing away and is not a leak.
pub fn find_leaks(kind: AnswerKind, question: &str, gold: &str, text: &str) -> Vec<Leak> {
    let gold_n = normalize_gold(kind, gold);
    match kind {
        AnswerKind::Number => {
            let mut leaks: Vec<Leak> = number()
                .find_iter(text)
                .filter(|m| clean_number(m.as_str()) == gold_n)
                .map(|m| Leak {
                    kind: LeakKind::Number,
                    matched: m.as_str().trim().into(),
                    range: Some((m.start(), m.end())),
                })
                .collect();
            if let Ok(target) = evaluate_expression(&gold_n) {
                let asked = squeezed(question);
                for (start, end) in expressions(text) {
                    let inside = |l: &Leak| l.range.is_some_and(|(s, e)| s < end && start < e);
                    let restated = asked.contains(&squeezed(text[start..end].trim_matches(['(', ')'])));
                    if !leaks.iter().any(inside) && !restated && evaluates_to(&text[start..end], &target) {
                        let matched = text[start..end].to_string();
                        leaks.push(Leak { kind: LeakKind::Expression, matched, range: Some((start, end)) });
                    }
                }
            }
            leaks.sort_by_key(|l| l.range);
            leaks
        }
        AnswerKind::Words | AnswerKind::Exact => {
            let gold_words: Vec<&str> = gold_n.split_whitespace().collect();
            if gold_words.len() < 2 {
                return Vec::new();
            }
            let words: Vec<String> = tokens(text).collect();
            let run = longest_run(&words, &gold_words);
            if run.len() >= MIN_RUN.min(gold_words.len()) {
                vec![Leak { kind: LeakKind::WordList, matched: run.join(" "), range: None }]
            } else {
                Vec::new()
            }
        }
        AnswerKind::Choice | AnswerKind::Stated => {
            let said = if kind == AnswerKind::Choice { format!("({gold_n})") } else { gold_n.clone() };
            let squeezed_said: String = said.split_whitespace().collect();
            let squeezed_text: String = text.split_whitespace().collect::<String>().to_uppercase();
            if squeezed_said.chars().count() >= 2 && squeezed_text.contains(&squeezed_said.to_uppercase()) {
                vec![Leak { kind: LeakKind::Verbatim, matched: said, range: None }]
            } else {
                Vec::new()
            }
        }
        AnswerKind::YesNo => Vec::new(),
    }
}

/// The byte ranges of candidate expressions: each maximal run of digits and operators
/// that holds an operator, and every parenthesised group inside one, innermost last.
fn expressions(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for m in expression().find_iter(text) {
        let span = m.as_str();
        let operator = |s: &str| s.chars().skip(1).any(|c| "+-−*/×÷·^".contains(c));
        if operator(span) || span.contains('(') {
            out.push((m.start(), m.end()));
        }
        let mut open = Vec::new();
        for (i, c) in span.char_indices() {
            match c {
                '(' => open.push(i),
                ')' => {
                    if let Some(s) = open.pop() {
                        out.push((m.start() + s, m.start() + i + 1));
                    }
                }
                _ => {}
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// `text` without whitespace.
fn squeezed(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn evaluates_to(expr: &str, target: &BigRational) -> bool {
    let expr = expr.replace('−', "-");
    let expr = expr.trim().trim_end_matches(['.', ',']);
    evaluate_expression(expr).is_ok_and(|v| &v == target)
}

/// The longest run of `words` that is also a contiguous run of `gold`, in order.
fn longest_run<'a>(words: &'a [String], gold: &[&str]) -> &'a [String] {
    let mut best: &[String] = &[];
    for i in 0..words.len() {
        for j in 0..gold.len() {
            let k = words[i..].iter().zip(&gold[j..]).take_while(|(w, g)| w.as_str() == **g).count();
            if k > best.len() {
                best = &words[i..i + k];
            }
        }
    }
    best
}

/// `text` with every leak of `gold` replaced by `[masked]` (a word list word by word:
/// the order is the answer).
pub fn mask_leaks(kind: AnswerKind, gold: &str, text: &str, leaks: &[Leak]) -> String {
    if leaks.iter().any(|l| l.kind == LeakKind::WordList) {
        let mut out = text.to_string();
        for w in normalize_gold(kind, gold).split_whitespace() {
            if let Ok(re) = Regex::new(&format!(r"(?i)\b{}\b", regex::escape(w))) {
                out = re.replace_all(&out, "[masked]").into_owned();
            }
        }
        return out;
    }
    // Outermost ranges only, replaced from the end so earlier offsets hold.
    let mut ranges: Vec<(usize, usize)> = leaks.iter().filter_map(|l| l.range).collect();
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (s, e) in ranges {
        match merged.last_mut() {
            Some((_, last)) if s < *last => *last = (*last).max(e),
            _ => merged.push((s, e)),
        }
    }
    let mut out = text.to_string();
    for (s, e) in merged.into_iter().rev() {
        out.replace_range(s..e, "[masked]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(leaks: &[Leak]) -> Vec<(LeakKind, &str)> {
        leaks.iter().map(|l| (l.kind, l.matched.as_str())).collect()
    }

    #[test]
    fn an_expression_that_evaluates_to_the_gold_number_leaks() {
        let text = "Close, but the correct final answer is (11 * 8).";
        let leaks = find_leaks(AnswerKind::Number, "", "88", text);
        assert_eq!(kinds(&leaks), vec![(LeakKind::Expression, "(11 * 8)")]);
        assert_eq!(
            mask_leaks(AnswerKind::Number, "88", text, &leaks),
            "Close, but the correct final answer is [masked]."
        );
        // Inside a longer expression, and with other operators and signs.
        let leaks = find_leaks(AnswerKind::Number, "", "-2116", "Check step C: (-46 × 46) + 0 is what you want.");
        assert_eq!(leaks.len(), 1, "{leaks:?}");
        assert!(find_leaks(AnswerKind::Number, "", "-2116", "C = (3 - 5) * 46 is wrong").is_empty());
        assert_eq!(
            kinds(&find_leaks(AnswerKind::Number, "", "12", "it is 3 * (2 + 2)")),
            vec![(LeakKind::Expression, "3 * (2 + 2)")]
        );
        // A plain number is a number leak; unrelated arithmetic is not a leak.
        assert_eq!(
            kinds(&find_leaks(AnswerKind::Number, "", "88", "the answer is 88.")),
            vec![(LeakKind::Number, "88")]
        );
        assert!(find_leaks(AnswerKind::Number, "", "88", "recompute 11 * 7 in step 2").is_empty());
        assert!(find_leaks(AnswerKind::Number, "", "88", "step 8 is wrong").is_empty());
        // Restating the question's own expression gives nothing away.
        assert!(find_leaks(AnswerKind::Number, "What is 11 * 8?", "88", "Recompute 11*8 carefully.").is_empty());
        assert_eq!(find_leaks(AnswerKind::Number, "What is 11 * 8?", "88", "It is 8 * 11.").len(), 1);
        assert_eq!(find_leaks(AnswerKind::Number, "", "-2116", "the result should be -2116, check C").len(), 1);
        assert!(find_leaks(AnswerKind::Number, "", "-2116", "check C = -1260 again; 21160 is not it").is_empty());
        let leaks = find_leaks(AnswerKind::Number, "", "-2116", "it is -2116 not 12");
        assert_eq!(mask_leaks(AnswerKind::Number, "-2116", "it is -2116 not 12", &leaks), "it is [masked] not 12");
    }

    #[test]
    fn an_ordered_run_of_the_gold_words_leaks_and_loose_mentions_do_not() {
        let gold = "apple banana cherry date fig";
        let leaks = find_leaks(AnswerKind::Words, "", gold, "Start with: apple, banana, cherry ...");
        assert_eq!(kinds(&leaks), vec![(LeakKind::WordList, "apple banana cherry")]);
        assert!(!mask_leaks(AnswerKind::Words, gold, "apple, banana, cherry", &leaks).contains("banana"));
        assert!(find_leaks(AnswerKind::Words, "", gold, "banana should come before date").is_empty());
        assert!(find_leaks(AnswerKind::Words, "", gold, "cherry banana apple is backwards").is_empty());
        assert_eq!(find_leaks(AnswerKind::Words, "", "fig pear", "write fig pear").len(), 1, "a two-word list whole");
        assert_eq!(find_leaks(AnswerKind::Words, "", "apple fig pear", "write: apple, fig, pear").len(), 1);
        assert!(find_leaks(AnswerKind::Words, "", "apple fig pear", "fig should come before pear").is_empty());
        assert!(find_leaks(AnswerKind::YesNo, "", "yes", "the answer is yes").is_empty());
    }
}
