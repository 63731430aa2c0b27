//! The citation-attributor (lexical scorer): for each sentence of an answer, retrieve
//! candidate passages and cite those that contain enough of the sentence's content
//! words. Needs no model. Citation recall and precision follow ALCE (Gao et al., 2023)
//! with lexical support standing in for an entailment judge.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::corpus::{split_sentences, CorpusError, Passage, Retriever, SearchOptions};

/// One answer sentence with its citations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CitedSentence {
    /// The sentence.
    pub text: String,
    /// Start, in characters, in the answer.
    pub start: usize,
    /// End (exclusive), in characters.
    pub end: usize,
    /// Cited passages with their support score.
    pub citations: Vec<(Passage, f64)>,
    /// Best support among candidates, cited or not.
    pub support: f64,
}

const STOP: &[&str] = &[
    "the", "a", "an", "and", "or", "of", "to", "in", "on", "at", "by", "for", "with", "is", "are", "was", "were", "be",
    "it", "its", "that", "this", "as", "from", "has", "have", "had", "which", "who", "what", "their", "there", "than",
];

/// Lowercase content words of `text`.
pub fn content_words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| !w.is_empty() && !STOP.contains(&w.as_str()))
        .collect()
}

/// Share of `claim`'s content words found in `passage` (0 when the claim has none).
pub fn lexical_support(claim: &str, passage: &str) -> f64 {
    word_share(&content_words(claim), &content_words(passage))
}

/// [`lexical_support`] over content words already taken (a passage searched for many
/// claims takes its words once).
pub fn word_share(claim: &HashSet<String>, passage: &HashSet<String>) -> f64 {
    if claim.is_empty() {
        return 0.0;
    }
    claim.iter().filter(|w| passage.contains(*w)).count() as f64 / claim.len() as f64
}

/// Cite each sentence of `answer` from `retriever`.
pub fn attribute(
    answer: &str,
    retriever: &dyn Retriever,
    candidates: usize,
    min_support: f64,
) -> Result<Vec<CitedSentence>, CorpusError> {
    let mut out = Vec::new();
    for r in split_sentences(answer) {
        let text = answer[r.clone()].to_string();
        let hits = retriever.search(&text, &SearchOptions { k: candidates, ..Default::default() })?;
        let mut scored: Vec<(Passage, f64)> = hits
            .into_iter()
            .map(|h| (lexical_support(&text, &h.passage.text), h.passage))
            .map(|(s, p)| (p, s))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let support = scored.first().map(|(_, s)| *s).unwrap_or(0.0);
        // Cite the best passage that clears the bar, plus others only if they add support.
        let citations: Vec<(Passage, f64)> = scored.into_iter().filter(|(_, s)| *s >= min_support).take(1).collect();
        out.push(CitedSentence {
            start: answer[..r.start].chars().count(),
            end: answer[..r.end].chars().count(),
            text,
            citations,
            support,
        });
    }
    Ok(out)
}

/// ALCE citation recall and precision with lexical support at `threshold`:
/// recall = sentences whose cited passages support them / all sentences;
/// precision = citations that support their sentence / all citations.
pub fn citation_quality(sentences: &[CitedSentence], threshold: f64) -> (f64, f64) {
    let n = sentences.len().max(1) as f64;
    let supported = sentences
        .iter()
        .filter(|s| s.citations.iter().any(|(p, _)| lexical_support(&s.text, &p.text) >= threshold))
        .count() as f64;
    let cites: Vec<f64> = sentences.iter().flat_map(|s| s.citations.iter().map(|(_, sc)| *sc)).collect();
    let precision = if cites.is_empty() {
        0.0
    } else {
        cites.iter().filter(|s| **s >= threshold).count() as f64 / cites.len() as f64
    };
    (supported / n, precision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_counts_content_words() {
        assert_eq!(
            lexical_support("Uranus was discovered by William Herschel", "William Herschel discovered Uranus in 1781"),
            1.0
        );
        let partial = lexical_support("Uranus was discovered by Galileo", "William Herschel discovered Uranus");
        assert!((partial - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(lexical_support("the of and", "anything"), 0.0);
    }
}
