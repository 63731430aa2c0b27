//! Reading a final answer out of free text and grading it against the gold answer.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// How answers of a dataset are compared with the gold answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerKind {
    /// An integer or decimal: the number after the last "answer is", else the last number.
    Number,
    /// A word sequence (word sorting): the question's words in the order the answer gives them.
    Words,
    /// Yes or no: the answer's claim about the question's subject where the claim
    /// reader knows the question (primality, flight connectivity), else the first
    /// yes/no (or true/false) the answer states.
    #[default]
    YesNo,
    /// The whole answer, case and whitespace folded.
    Exact,
    /// A multiple-choice option, "(A)" to "(Z)": the last one after "the answer is",
    /// else the last one the text gives (BIG-Bench Mistake's logical deduction and
    /// shuffled objects, which its authors score as multiple choice).
    Choice,
    /// What follows the last "the answer is", whitespace folded and a final full stop
    /// dropped (Dyck languages; the BIG-Bench Mistake repository extracts answers with
    /// `(?<=[Tt]he answer is).*$`).
    Stated,
}

fn answer_is() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?i)(?:answer is|answer:|result is|equals|=)\s*").unwrap_or_else(|_| unreachable!()))
}

pub(super) fn number() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"[-−]?\s?\d[\d,]*(?:\.\d+)?").unwrap_or_else(|_| unreachable!()))
}

fn choice() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\(([A-Za-z])\)").unwrap_or_else(|_| unreachable!()))
}

fn the_answer_is() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?i)the answer is").unwrap_or_else(|_| unreachable!()))
}

fn yes_no() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?i)\b(yes|no|true|false)\b").unwrap_or_else(|_| unreachable!()))
}

pub(super) fn clean_number(raw: &str) -> String {
    let s: String = raw.chars().filter(|c| !c.is_whitespace() && *c != ',').collect();
    let s = s.replace('−', "-");
    let s = s.strip_suffix(".0").unwrap_or(&s).to_string();
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// Lower-cased words of `text`: split at whitespace and commas, outer punctuation
/// trimmed (so "a&m" and "o'brien" stay whole, "fig." becomes "fig").
pub(super) fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| !w.is_empty())
}

/// The text after the last "answer is" (or similar), when the answer has one.
fn final_part(text: &str) -> Option<&str> {
    answer_is().find_iter(text).last().map(|m| &text[m.end()..]).filter(|rest| !rest.trim().is_empty())
}

/// The answer `text` gives, normalised for comparison; `None` when it gives none.
pub fn extract(kind: AnswerKind, question: &str, text: &str) -> Option<String> {
    match kind {
        AnswerKind::Number => {
            let from_final = final_part(text).and_then(|rest| number().find(rest));
            from_final.or_else(|| number().find_iter(text).last()).map(|m| clean_number(m.as_str()))
        }
        AnswerKind::Words => {
            let vocabulary: Vec<String> = question
                .split_once("List:")
                .and_then(|(_, l)| l.lines().next())
                .unwrap_or(question)
                .split_whitespace()
                .map(str::to_lowercase)
                .collect();
            let part =
                final_part(text).unwrap_or_else(|| text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(""));
            let words: Vec<String> = tokens(part).filter(|w| vocabulary.contains(w)).collect();
            (!words.is_empty()).then(|| words.join(" "))
        }
        // The claim reader the tool-checker uses first ("10663 is a composite number"
        // answers "Is 10663 a prime number?"), then the first yes/no the text states.
        AnswerKind::YesNo => match crate::agents::stance(question, text) {
            Some(yes) => Some(if yes { "yes" } else { "no" }.to_string()),
            None => yes_no().captures(text).map(|c| match c[1].to_lowercase().as_str() {
                "yes" | "true" => "yes".to_string(),
                _ => "no".to_string(),
            }),
        },
        AnswerKind::Exact => {
            let s = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
            (!s.is_empty()).then_some(s)
        }
        AnswerKind::Choice => {
            let after = the_answer_is().find_iter(text).last().map(|m| &text[m.end()..]);
            let pick = |t: &str| choice().captures(t).map(|c| c[1].to_uppercase());
            after.and_then(pick).or_else(|| choice().captures_iter(text).last().map(|c| c[1].to_uppercase()))
        }
        AnswerKind::Stated => {
            let after = &text[the_answer_is().find_iter(text).last()?.end()..];
            let line = after.lines().next().unwrap_or("");
            let s = line.split_whitespace().collect::<Vec<_>>().join(" ");
            let s = s.trim_end_matches('.').trim().to_string();
            (!s.is_empty()).then_some(s)
        }
    }
}

/// The gold answer normalised the way [`extract`] normalises answers.
pub fn normalize_gold(kind: AnswerKind, gold: &str) -> String {
    match kind {
        AnswerKind::Number => clean_number(gold.trim()),
        AnswerKind::Words | AnswerKind::Exact => gold.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase(),
        AnswerKind::YesNo => gold.trim().to_lowercase(),
        AnswerKind::Choice => {
            choice().captures(gold).map(|c| c[1].to_uppercase()).unwrap_or_else(|| gold.trim().to_uppercase())
        }
        AnswerKind::Stated => gold.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// Whether `answer` (already extracted) matches `gold`.
pub fn is_correct(kind: AnswerKind, answer: Option<&str>, gold: &str) -> bool {
    answer.is_some_and(|a| a == normalize_gold(kind, gold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_prefer_the_stated_final_answer() {
        let t = "A = -14, B = 2. Then A - B = -16. So the answer is -2,116.";
        assert_eq!(extract(AnswerKind::Number, "", t).as_deref(), Some("-2116"));
        assert_eq!(extract(AnswerKind::Number, "", "I think 12 then 40").as_deref(), Some("40"));
        assert_eq!(extract(AnswerKind::Number, "", "no idea"), None);
        assert!(is_correct(AnswerKind::Number, Some("-2116"), "-2116"));
        assert!(!is_correct(AnswerKind::Number, Some("2116"), "-2116"));
    }

    #[test]
    fn word_lists_keep_only_question_words_in_order() {
        let q = "Sort the following words alphabetically: List: pear apple fig a&m";
        let a = "Sorted: So the answer is a&m apple, fig, pear.";
        assert_eq!(extract(AnswerKind::Words, q, a).as_deref(), Some("a&m apple fig pear"));
        assert!(is_correct(AnswerKind::Words, extract(AnswerKind::Words, q, a).as_deref(), "a&m apple fig pear"));
    }

    /// Phrasings of the kind models write on snowball items (the first two from a
    /// stored run of the embedded model), with the stance each takes.
    #[test]
    fn yes_no_reads_the_answers_claim_about_the_question() {
        let prime = "Is 10663 a prime number? Answer with yes or no first.";
        let table: [(&str, &str, Option<&str>); 14] = [
            (prime, "10663 is a composite number.", Some("no")),
            ("Is 5471 a prime number?", "5471 is indeed a composite number, as it is divisible by 7.", Some("no")),
            (prime, "No, 10663 is not a prime number.", Some("no")),
            (prime, "Yes, 10663 is a prime number.", Some("yes")),
            (prime, "10663 is a prime number because it has no divisors other than 1 and itself.", Some("yes")),
            (prime, "It is not a prime number.", Some("no")),
            (prime, "To check if 10663 is a prime number, we divide it by small primes. 10663 is prime.", Some("yes")),
            (prime, "10,663 is not prime.", Some("no")),
            (prime, "There is no simple rule, but 10663 is a prime number.", Some("yes")),
            (prime, "I am not sure.", None),
            (
                "Question: Is there a series of flights that goes from city F to city K?",
                "No, you cannot fly from city F to city K.",
                Some("no"),
            ),
            ("... goes from city F to city K?", "You can fly from F to K via city B.", Some("yes")),
            ("Is the sky blue?", "Yes.", Some("yes")),
            ("Is the sky blue?", "That is true.", Some("yes")),
        ];
        for (question, answer, stance) in table {
            assert_eq!(extract(AnswerKind::YesNo, question, answer).as_deref(), stance, "{answer:?}");
        }
    }

    #[test]
    fn choices_and_stated_answers_follow_the_answer_is() {
        let t = "Options (A) and (C) remain. At the end, Alice has Ulysses. So the answer is (B).";
        assert_eq!(extract(AnswerKind::Choice, "", t).as_deref(), Some("B"));
        assert!(is_correct(AnswerKind::Choice, Some("B"), "(B)"));
        assert_eq!(extract(AnswerKind::Choice, "", "I pick (d) here"), Some("D".into()));
        assert_eq!(extract(AnswerKind::Choice, "", "no option"), None);
        let dyck = "The final stack is \"{ [\".\nSo, we need \"] }\". So the answer is ] }";
        assert_eq!(extract(AnswerKind::Stated, "", dyck).as_deref(), Some("] }"));
        assert!(is_correct(AnswerKind::Stated, Some("] }"), "]  }"));
        assert_eq!(extract(AnswerKind::Stated, "", "no final answer"), None);
    }

    #[test]
    fn yes_no_takes_the_first_stance() {
        assert_eq!(extract(AnswerKind::YesNo, "", "No. Yes would be wrong").as_deref(), Some("no"));
        assert_eq!(extract(AnswerKind::YesNo, "", "True, it is.").as_deref(), Some("yes"));
        assert_eq!(extract(AnswerKind::YesNo, "", "Maybe"), None);
    }
}
