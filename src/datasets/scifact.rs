//! SciFact claims (Wadden et al., 2020): `claims_*.jsonl` with `claim`, `evidence`
//! (doc id -> [{sentences, label}]) and `cited_doc_ids`.

use std::path::Path;

use serde::Deserialize;

use super::DatasetError;
use crate::corpus::evaluate::GoldQuery;

#[derive(Deserialize)]
struct RawClaim {
    id: u64,
    claim: String,
    #[serde(default)]
    evidence: std::collections::BTreeMap<String, Vec<RawEvidence>>,
    #[serde(default)]
    cited_doc_ids: Vec<u64>,
}

#[derive(Deserialize)]
struct RawEvidence {
    sentences: Vec<usize>,
    label: String,
}

/// One SciFact claim.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Claim id.
    pub id: u64,
    /// The claim text.
    pub text: String,
    /// Cited abstracts (the gold documents for retrieval).
    pub cited_docs: Vec<String>,
    /// Rationale sentences: (doc id, sentence index, label `SUPPORT`/`CONTRADICT`).
    pub rationales: Vec<(String, usize, String)>,
}

impl Claim {
    /// As a retrieval query with gold documents and sentences.
    pub fn to_gold_query(&self) -> GoldQuery {
        GoldQuery {
            query: self.text.clone(),
            gold_docs: self.cited_docs.clone(),
            gold_sentences: self.rationales.iter().map(|(d, s, _)| (d.clone(), *s)).collect(),
        }
    }
}

/// Read a claims file.
pub fn load_claims(path: &Path) -> Result<Vec<Claim>, DatasetError> {
    let text = super::read(path)?;
    let mut claims = Vec::new();
    super::for_each_line(path, &text, |value| {
        let raw: RawClaim = serde_json::from_value(value).map_err(|e| e.to_string())?;
        let rationales = raw
            .evidence
            .iter()
            .flat_map(|(doc, evs)| {
                evs.iter().flat_map(move |ev| ev.sentences.iter().map(move |s| (doc.clone(), *s, ev.label.clone())))
            })
            .collect();
        claims.push(Claim {
            id: raw.id,
            text: raw.claim,
            cited_docs: raw.cited_doc_ids.iter().map(u64::to_string).collect(),
            rationales,
        });
        Ok(())
    })?;
    Ok(claims)
}

/// SciFact claims that have rationales, as yes/no items: "yes" when the evidence
/// supports the claim, "no" when it contradicts it (claims without evidence are left out).
pub fn load_claim_items(path: &Path) -> Result<Vec<super::Item>, DatasetError> {
    Ok(load_claims(path)?
        .into_iter()
        .filter_map(|c| {
            let label = c.rationales.first()?.2.clone();
            let gold = if label == "SUPPORT" { "yes" } else { "no" };
            Some(super::Item {
                id: format!("scifact:{}", c.id),
                question: format!("Is the following claim true? {}", c.text),
                gold: gold.into(),
                steps: vec![],
                mistake_index: None,
                evidence_docs: vec![],
            })
        })
        .collect())
}

/// The gold label of a SciFact claim: its first rationale's label, or `NOT ENOUGH INFO`
/// when it has no evidence.
pub const NOT_ENOUGH_INFO: &str = "NOT ENOUGH INFO";

/// Every SciFact claim as an item whose question is the claim, whose gold answer is its
/// label (`SUPPORT`, `CONTRADICT` or [`NOT_ENOUGH_INFO`]) and whose evidence documents
/// are those its rationales are in. A claim with both labels takes its first.
pub fn load_labelled_claims(path: &Path) -> Result<Vec<super::Item>, DatasetError> {
    Ok(load_claims(path)?
        .into_iter()
        .map(|c| {
            let gold = c.rationales.first().map(|r| r.2.clone()).unwrap_or_else(|| NOT_ENOUGH_INFO.into());
            let mut docs: Vec<String> = c.rationales.iter().map(|r| r.0.clone()).collect();
            docs.dedup();
            super::Item {
                id: format!("scifact:{}", c.id),
                question: c.text,
                gold,
                steps: vec![],
                mistake_index: None,
                evidence_docs: docs,
            }
        })
        .collect())
}
