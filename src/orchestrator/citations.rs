//! Citation numbering: cited passages become numbered sources, each cited sentence
//! gets `[n]` markers and a claim report. Pure logic, kept apart from the loop.

use super::{ClaimReport, Evidence};
use crate::{agents::CitedSentence, corpus::Passage, trace::Verdict};

/// An answer with its citations numbered.
#[derive(Debug, Clone)]
pub(super) struct Numbered {
    /// The answer with ` [n]` after each cited sentence.
    pub cited_answer: String,
    /// Cited passages, in order of first citation; `[n]` is `sources[n-1]`.
    pub sources: Vec<Passage>,
    /// One claim per sentence: supported when it cites something.
    pub claims: Vec<ClaimReport>,
}

/// Number the citations of `cited` (sentences of `answer`, character offsets).
pub(super) fn number(answer: &str, cited: &[CitedSentence]) -> Numbered {
    let mut sources: Vec<Passage> = Vec::new();
    let mut markers: Vec<(usize, String)> = Vec::new();
    let mut claims = Vec::new();
    for s in cited {
        let mut evidence = Vec::new();
        for (p, score) in &s.citations {
            let n = match sources.iter().position(|q| q.passage_id == p.passage_id) {
                Some(i) => i + 1,
                None => {
                    sources.push(p.clone());
                    sources.len()
                }
            };
            markers.push((s.end, format!(" [{n}]")));
            evidence.push(Evidence::Passage {
                doc_id: p.doc_id.clone(),
                passage_id: p.passage_id.clone(),
                start: p.start,
                end: p.end,
                score: *score,
            });
        }
        let verdict = if evidence.is_empty() { Verdict::Unsupported } else { Verdict::Supported };
        claims.push(ClaimReport {
            evidence,
            score: Some(s.support),
            ..ClaimReport::new(s.text.clone(), s.start, s.end, verdict)
        });
    }
    // Insert markers from the back so earlier character offsets stay valid.
    let mut chars: Vec<char> = answer.chars().collect();
    for (at, mark) in markers.into_iter().rev() {
        let at = at.min(chars.len());
        chars.splice(at..at, mark.chars());
    }
    Numbered { cited_answer: chars.into_iter().collect(), sources, claims }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(id: &str) -> Passage {
        Passage {
            doc_id: format!("doc-{id}"),
            passage_id: id.into(),
            title: String::new(),
            text: format!("text {id}"),
            start: 0,
            end: 6,
        }
    }

    fn sentence(text: &str, start: usize, citations: Vec<(Passage, f64)>) -> CitedSentence {
        let end = start + text.chars().count();
        CitedSentence { text: text.into(), start, end, citations, support: 0.0 }
    }

    #[test]
    fn sources_are_numbered_by_first_citation_and_reused() {
        let answer = "Uranus was found in 1781. Herschel found it. Café.";
        let cited = vec![
            sentence("Uranus was found in 1781.", 0, vec![(passage("b"), 0.9), (passage("a"), 0.6)]),
            sentence("Herschel found it.", 26, vec![(passage("a"), 0.8)]),
            sentence("Café.", 45, vec![]),
        ];
        let n = number(answer, &cited);
        assert_eq!(n.cited_answer, "Uranus was found in 1781. [1] [2] Herschel found it. [2] Café.");
        let ids: Vec<&str> = n.sources.iter().map(|p| p.passage_id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        let verdicts: Vec<Verdict> = n.claims.iter().map(|c| c.verdict).collect();
        assert_eq!(verdicts, [Verdict::Supported, Verdict::Supported, Verdict::Unsupported]);
    }

    #[test]
    fn offsets_count_characters_not_bytes() {
        let answer = "Ünïcödé here. Next.";
        let cited = vec![sentence("Next.", 14, vec![(passage("x"), 1.0)])];
        assert_eq!(number(answer, &cited).cited_answer, "Ünïcödé here. Next. [1]");
    }
}
