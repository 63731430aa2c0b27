//! Citation quality the way ALCE measures it (Gao et al., 2023), with an [`Entailment`]
//! judge instead of an NLI model, and leave-one-out attribution for backends that
//! cannot score continuations.
//!
//! - Recall: a sentence counts when its cited passages, together, entail it.
//! - Precision: a citation is irrelevant when it does not entail its sentence alone and
//!   the sentence's other citations still entail it without it; where the citations
//!   together do not entail the sentence, none of them counts as precise.

use serde::Serialize;

use super::{AgentError, CitedSentence, Entailment, Label};
use crate::corpus::Passage;

/// ALCE citation recall and precision of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CitationQuality {
    /// Sentences whose citations entail them / sentences.
    pub recall: Option<f64>,
    /// Precise citations / citations.
    pub precision: Option<f64>,
    /// Sentences scored.
    pub sentences: usize,
    /// Citations scored.
    pub citations: usize,
    /// Judgements made.
    pub judgements: usize,
}

fn texts(passages: &[&Passage]) -> Vec<String> {
    passages.iter().map(|p| p.evidence_text()).collect()
}

/// Score `sentences` with `judge`.
pub async fn citation_quality(
    judge: &dyn Entailment,
    sentences: &[CitedSentence],
) -> Result<CitationQuality, AgentError> {
    let (mut entailed, mut precise, mut citations, mut judgements) = (0usize, 0usize, 0usize, 0usize);
    for s in sentences {
        let cited: Vec<&Passage> = s.citations.iter().map(|(p, _)| p).collect();
        citations += cited.len();
        if cited.is_empty() {
            continue;
        }
        judgements += 1;
        let joint = judge.judge(&s.text, &texts(&cited)).await?.label == Label::Supported;
        if !joint {
            continue;
        }
        entailed += 1;
        if cited.len() == 1 {
            precise += 1;
            continue;
        }
        for i in 0..cited.len() {
            judgements += 1;
            if judge.judge(&s.text, &texts(&cited[i..=i])).await?.label == Label::Supported {
                precise += 1;
                continue;
            }
            let rest: Vec<&Passage> = cited.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| *p).collect();
            judgements += 1;
            if judge.judge(&s.text, &texts(&rest)).await?.label != Label::Supported {
                precise += 1;
            }
        }
    }
    let ratio = |k: usize, n: usize| (n > 0).then(|| k as f64 / n as f64);
    Ok(CitationQuality {
        recall: ratio(entailed, sentences.len()),
        precision: ratio(precise, citations),
        sentences: sentences.len(),
        citations,
        judgements,
    })
}

/// The support a judgement gives: its score when it says "supported", else 0.
async fn support(judge: &dyn Entailment, statement: &str, evidence: &[String]) -> Result<f64, AgentError> {
    let j = judge.judge(statement, evidence).await?;
    Ok(if j.label == Label::Supported { j.score } else { 0.0 })
}

/// Leave-one-out attribution with a judge (for black-box backends): each passage's
/// weight is how much the judge's support for `statement` drops without it. One
/// judgement for all passages, then one per passage.
pub async fn leave_one_out(
    judge: &dyn Entailment,
    statement: &str,
    sources: &[String],
) -> Result<Vec<f64>, AgentError> {
    let full = support(judge, statement, sources).await?;
    let mut weights = Vec::with_capacity(sources.len());
    for i in 0..sources.len() {
        let rest: Vec<String> = sources.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, s)| s.clone()).collect();
        weights.push(full - support(judge, statement, &rest).await?);
    }
    Ok(weights)
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::agents::{JudgeKind, Judgement};

    /// Supported exactly when one of the evidence texts contains `key`.
    struct Contains(&'static str);

    #[async_trait]
    impl Entailment for Contains {
        async fn judge(&self, _claim: &str, evidence: &[String]) -> Result<Judgement, AgentError> {
            let yes = evidence.iter().any(|e| e.contains(self.0));
            let label = if yes { Label::Supported } else { Label::NotEnoughInfo };
            Ok(Judgement { label, score: 1.0, judge: JudgeKind::Lexical, logprobs: None })
        }
    }

    fn passage(id: &str, text: &str) -> Passage {
        Passage { doc_id: id.into(), passage_id: id.into(), title: id.into(), text: text.into(), start: 0, end: 0 }
    }

    fn sentence(text: &str, cites: &[Passage]) -> CitedSentence {
        CitedSentence {
            text: text.into(),
            start: 0,
            end: 0,
            citations: cites.iter().map(|p| (p.clone(), 1.0)).collect(),
            support: 0.0,
        }
    }

    #[tokio::test]
    async fn a_small_case_whose_scores_we_know() {
        let herschel = passage("a", "Herschel found Uranus in 1781.");
        let planets = passage("b", "Uranus is the seventh planet.");
        let moons = passage("c", "Uranus has 28 moons.");
        let sentences = vec![
            // Entailed by a (b adds nothing): a precise, b irrelevant.
            sentence("Herschel found Uranus.", &[herschel.clone(), planets.clone()]),
            // Entailed by its one citation: precise.
            sentence("Uranus is the seventh planet.", std::slice::from_ref(&planets)),
            // Cited, not entailed: recall 0 for it, its citation not precise.
            sentence("Uranus has rings.", &[moons]),
            // Not cited at all.
            sentence("It is cold.", &[]),
        ];
        let judge = Contains("Herschel");
        let q = citation_quality(&judge, &sentences[..1]).await.unwrap();
        assert_eq!((q.recall, q.precision), (Some(1.0), Some(0.5)));
        let judge = KeyPerSentence;
        let q = citation_quality(&judge, &sentences).await.unwrap();
        assert_eq!((q.sentences, q.citations), (4, 4));
        assert_eq!(q.recall, Some(2.0 / 4.0));
        assert_eq!(q.precision, Some(2.0 / 4.0), "a and b's seventh-planet citation are precise");
    }

    /// Supported when the evidence holds the sentence's own key fact.
    struct KeyPerSentence;

    #[async_trait]
    impl Entailment for KeyPerSentence {
        async fn judge(&self, claim: &str, evidence: &[String]) -> Result<Judgement, AgentError> {
            let key = match claim {
                "Herschel found Uranus." => "Herschel",
                "Uranus is the seventh planet." => "seventh",
                _ => "rings",
            };
            let label = if evidence.iter().any(|e| e.contains(key)) { Label::Supported } else { Label::NotEnoughInfo };
            Ok(Judgement { label, score: 1.0, judge: JudgeKind::Lexical, logprobs: None })
        }
    }

    #[tokio::test]
    async fn leave_one_out_weighs_the_passage_the_support_rests_on() {
        let sources = vec!["Uranus is cold.".to_string(), "Herschel found Uranus.".to_string()];
        let w = leave_one_out(&Contains("Herschel"), "Herschel found Uranus.", &sources).await.unwrap();
        assert_eq!(w, vec![0.0, 1.0]);
    }
}
