//! Sentence splitting with byte offsets, for passages, claims and citations.
//!
//! Rule-based: a sentence ends at `.`, `!`, `?` or `…` (plus closing quotes and
//! brackets) followed by white space and a sentence-looking start, or at a blank line.
//! It does not end inside decimals (`3.14`), after common abbreviations (`e.g.`,
//! `Dr.`, `et al.`), after single-letter initials (`J. Smith`), or before a lowercase word.

use std::ops::Range;

/// Abbreviations after which a period never ends a sentence (compared lowercase,
/// without the final period).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "e.g", "i.e", "cf", "al", "fig", "figs", "no", "nos",
    "inc", "ltd", "co", "corp", "approx", "ca", "eq", "eqs", "ref", "refs", "vol", "pp", "p", "ed", "eds", "dept",
    "univ", "gen", "gov", "sen", "rep", "u.s", "u.k", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
    "oct", "nov", "dec", "mt", "ft", "resp", "viz", "et",
];

const CLOSERS: &[char] = &['"', '\'', '”', '’', ')', ']', '»'];

/// Split `text` into sentences, returned as byte ranges with surrounding white space trimmed.
pub fn split_sentences(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        // A blank line always ends a sentence (paragraphs, headings, list items).
        if c == '\n' && next_non_space_is_newline(&chars, i + 1) {
            push_trimmed(text, start..pos, &mut out);
            start = pos;
            i += 1;
            continue;
        }
        if matches!(c, '.' | '!' | '?' | '…') {
            // Swallow runs like "?!" or "..." and closing quotes/brackets.
            let mut j = i + 1;
            while j < chars.len() && (matches!(chars[j].1, '.' | '!' | '?' | '…') || CLOSERS.contains(&chars[j].1)) {
                j += 1;
            }
            let end = chars.get(j).map(|&(p, _)| p).unwrap_or(text.len());
            let followed_by_space = j >= chars.len() || chars[j].1.is_whitespace();
            if followed_by_space && is_boundary(text, &chars, i, j) {
                push_trimmed(text, start..end, &mut out);
                start = end;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    push_trimmed(text, start..text.len(), &mut out);
    out
}

fn next_non_space_is_newline(chars: &[(usize, char)], from: usize) -> bool {
    chars[from.min(chars.len())..]
        .iter()
        .find(|(_, c)| !matches!(c, ' ' | '\t' | '\r'))
        .is_some_and(|&(_, c)| c == '\n')
}

/// Whether the terminator at `chars[at]` (ending before `chars[after]`) ends a sentence.
fn is_boundary(text: &str, chars: &[(usize, char)], at: usize, after: usize) -> bool {
    // Look at the next non-space character.
    let next = chars[after..].iter().map(|&(_, c)| c).find(|c| !c.is_whitespace());
    let Some(next) = next else { return true };
    if next.is_lowercase() {
        return false;
    }
    if chars[at].1 != '.' {
        return true;
    }
    // The word before the period: letters, digits and inner periods ("e.g", "U.S").
    let word_end = chars[at].0;
    let word_start = text[..word_end]
        .char_indices()
        .rev()
        .take_while(|&(_, c)| c.is_alphanumeric() || c == '.')
        .last()
        .map(|(p, _)| p)
        .unwrap_or(word_end);
    let word = &text[word_start..word_end];
    if word.is_empty() {
        return true;
    }
    // Single-letter initials ("J. Smith"), but not a lone digit ("in step 2. Then").
    let mut letters = word.chars();
    if let (Some(first), None) = (letters.next(), letters.next()) {
        if first.is_uppercase() {
            return false;
        }
    }
    !ABBREVIATIONS.contains(&word.to_lowercase().as_str())
}

fn push_trimmed(text: &str, range: Range<usize>, out: &mut Vec<Range<usize>>) {
    let slice = &text[range.clone()];
    let lead = slice.len() - slice.trim_start().len();
    let trail = slice.len() - slice.trim_end().len();
    if lead + trail < slice.len() {
        out.push(range.start + lead..range.end - trail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<&str> {
        split_sentences(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn handles_abbreviations_decimals_and_quotes() {
        let text = "Dr. Smith et al. measured 3.14 units, e.g. in mice. \"It works!\" she said. Then J. R. Tolkien wrote (see Fig. 2). Done?";
        assert_eq!(
            split(text),
            vec![
                "Dr. Smith et al. measured 3.14 units, e.g. in mice.",
                "\"It works!\" she said.",
                "Then J. R. Tolkien wrote (see Fig. 2).",
                "Done?"
            ]
        );
    }

    #[test]
    fn blank_lines_and_lowercase_continuations() {
        let text = "# Title\n\nFirst line. the same sentence continues... And a new one.\n\n- item one\n- item two";
        assert_eq!(
            split(text),
            vec!["# Title", "First line. the same sentence continues...", "And a new one.", "- item one\n- item two"]
        );
    }

    #[test]
    fn offsets_point_into_the_text_with_unicode() {
        let text = "  Ünïcode is fine. Ça va? Oui…  ";
        let ranges = split_sentences(text);
        assert_eq!(
            ranges.iter().map(|r| &text[r.clone()]).collect::<Vec<_>>(),
            vec!["Ünïcode is fine.", "Ça va?", "Oui…"]
        );
        assert!(split_sentences("").is_empty());
        assert!(split_sentences("   \n\n ").is_empty());
    }

    #[test]
    fn numbers_at_sentence_end_still_split() {
        assert_eq!(split("The answer is 42. Next step."), vec!["The answer is 42.", "Next step."]);
        assert_eq!(split("Costs rose 2.5%. Prices fell."), vec!["Costs rose 2.5%.", "Prices fell."]);
    }
}
