//! Re-ranking of BM25 candidates: a per-document cap and Maximal Marginal Relevance.
//!
//! MMR (Carbonell & Goldstein, 1998) picks, at each step, the candidate maximising
//! `λ·relevance − (1−λ)·max similarity to those already picked`; fact-checking
//! pipelines use it to gather diverse evidence. Relevance is the BM25 score scaled to
//! [0, 1]; similarity is the cosine of lowercase word-count vectors.

use std::collections::HashMap;

use super::{Passage, SearchOptions};

/// Choose `options.k` of `candidates` (sorted by descending score).
pub fn select(candidates: Vec<(f32, Passage)>, options: &SearchOptions) -> Vec<(f32, Passage)> {
    let capped = cap_per_doc(candidates, options.max_per_doc);
    match options.mmr {
        Some(lambda) => mmr(capped, lambda.clamp(0.0, 1.0), options.k),
        None => capped.into_iter().take(options.k).collect(),
    }
}

fn cap_per_doc(candidates: Vec<(f32, Passage)>, cap: Option<usize>) -> Vec<(f32, Passage)> {
    let Some(cap) = cap else { return candidates };
    let mut per_doc: HashMap<String, usize> = HashMap::new();
    candidates
        .into_iter()
        .filter(|(_, p)| {
            let n = per_doc.entry(p.doc_id.clone()).or_insert(0);
            *n += 1;
            *n <= cap
        })
        .collect()
}

fn word_counts(text: &str) -> HashMap<String, f32> {
    let mut m = HashMap::new();
    for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2) {
        *m.entry(w.to_lowercase()).or_insert(0.0) += 1.0;
    }
    m
}

fn cosine(a: &HashMap<String, f32>, b: &HashMap<String, f32>) -> f32 {
    let dot: f32 = a.iter().filter_map(|(w, x)| b.get(w).map(|y| x * y)).sum();
    let norm = |m: &HashMap<String, f32>| m.values().map(|x| x * x).sum::<f32>().sqrt();
    let d = norm(a) * norm(b);
    if d == 0.0 {
        0.0
    } else {
        dot / d
    }
}

fn mmr(candidates: Vec<(f32, Passage)>, lambda: f32, k: usize) -> Vec<(f32, Passage)> {
    let max_score = candidates.iter().map(|(s, _)| *s).fold(0.0f32, f32::max).max(f32::MIN_POSITIVE);
    let vectors: Vec<_> = candidates.iter().map(|(_, p)| word_counts(&p.text)).collect();
    let mut remaining: Vec<usize> = (0..candidates.len()).collect();
    let mut picked: Vec<usize> = Vec::new();
    while picked.len() < k && !remaining.is_empty() {
        let value = |i: usize| {
            let relevance = candidates[i].0 / max_score;
            let redundancy = picked.iter().map(|&j| cosine(&vectors[i], &vectors[j])).fold(0.0f32, f32::max);
            lambda * relevance - (1.0 - lambda) * redundancy
        };
        let (pos, _) = remaining
            .iter()
            .enumerate()
            .map(|(pos, &i)| (pos, value(i)))
            .fold((0, f32::NEG_INFINITY), |best, cur| if cur.1 > best.1 { cur } else { best });
        picked.push(remaining.remove(pos));
    }
    let mut slots: Vec<Option<(f32, Passage)>> = candidates.into_iter().map(Some).collect();
    picked.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(doc: &str, n: usize, text: &str) -> Passage {
        Passage {
            doc_id: doc.into(),
            passage_id: format!("{doc}#{n}"),
            title: String::new(),
            text: text.into(),
            start: 0,
            end: text.chars().count(),
        }
    }

    fn ids(v: &[(f32, Passage)]) -> Vec<&str> {
        v.iter().map(|(_, p)| p.passage_id.as_str()).collect()
    }

    #[test]
    fn mmr_prefers_diverse_evidence() {
        let c = vec![
            (10.0, p("a", 0, "aspirin reduces heart attack risk in adults")),
            (9.9, p("b", 0, "aspirin reduces heart attack risk in adults")),
            (8.0, p("c", 0, "bleeding is a known side effect of aspirin therapy")),
        ];
        let plain = select(c.clone(), &SearchOptions { k: 2, ..Default::default() });
        assert_eq!(ids(&plain), vec!["a#0", "b#0"]);
        let diverse = select(c, &SearchOptions { k: 2, mmr: Some(0.5), ..Default::default() });
        assert_eq!(ids(&diverse), vec!["a#0", "c#0"]);
    }

    #[test]
    fn mmr_with_lambda_one_is_plain_ranking() {
        let c = vec![(3.0, p("a", 0, "x y z")), (2.0, p("a", 1, "x y z")), (1.0, p("b", 0, "q r s"))];
        assert_eq!(
            ids(&select(c, &SearchOptions { k: 3, mmr: Some(1.0), ..Default::default() })),
            vec!["a#0", "a#1", "b#0"]
        );
    }

    #[test]
    fn caps_passages_per_document() {
        let c = vec![(3.0, p("a", 0, "x")), (2.0, p("a", 1, "y")), (1.0, p("b", 0, "z"))];
        assert_eq!(
            ids(&select(c, &SearchOptions { k: 2, max_per_doc: Some(1), ..Default::default() })),
            vec!["a#0", "b#0"]
        );
    }
}
