//! The decomposer: splits an answer into short, self-contained claims (one fact each,
//! pronouns resolved; the FActScore / SAFE way), each tied to the span of the answer it
//! comes from. Its JSON is validated against `agents/decomposer.toml`'s schema with the
//! critic's bounded re-ask; when it still fails, the answer's sentences are the claims
//! and a `decomposition_fallback` event says so.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    attributor::content_words,
    structured::{ask_structured, StructuredCall},
    AgentError, AgentSet,
};
use crate::{
    corpus::split_sentences,
    llm::{ChatModel, Purpose, SamplingParams},
    trace::RunRecorder,
};

/// One atomic claim of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtomicClaim {
    /// The claim, self-contained.
    pub text: String,
    /// Start, in characters, of the answer text it comes from.
    pub start: usize,
    /// End (exclusive), in characters.
    pub end: usize,
}

/// How the claims were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decomposition {
    /// The decomposer's validated output.
    Decomposed,
    /// The answer's sentences are the claims: asked for, or the decomposer's output
    /// never validated.
    Sentences,
    /// The whole answer is the one claim, as asked.
    Whole,
}

#[derive(Deserialize)]
struct Reply {
    claims: Vec<ReplyClaim>,
}

#[derive(Deserialize)]
struct ReplyClaim {
    claim: String,
    #[serde(default)]
    source: String,
}

/// The answer's sentences as claims, with their spans.
pub fn sentence_claims(answer: &str) -> Vec<AtomicClaim> {
    split_sentences(answer)
        .into_iter()
        .map(|r| AtomicClaim {
            text: answer[r.clone()].trim().to_string(),
            start: answer[..r.start].chars().count(),
            end: answer[..r.end].chars().count(),
        })
        .filter(|c| !c.text.is_empty())
        .collect()
}

/// The character span of `answer` that `source` (a quote from it) or, failing an exact
/// quote, `claim` comes from: the exact quote, else the sentence sharing most content
/// words with them, else the whole answer.
pub fn locate(answer: &str, source: &str, claim: &str) -> (usize, usize) {
    let chars = |byte: usize| answer[..byte].chars().count();
    let quote = source.trim();
    if !quote.is_empty() {
        if let Some(at) = answer.find(quote) {
            return (chars(at), chars(at + quote.len()));
        }
    }
    let wanted = content_words(&format!("{source} {claim}"));
    let best = split_sentences(answer)
        .into_iter()
        .map(|r| (content_words(&answer[r.clone()]).intersection(&wanted).count(), r))
        .filter(|(shared, _)| *shared > 0)
        .max_by_key(|(shared, r)| (*shared, std::cmp::Reverse(r.start)));
    match best {
        Some((_, r)) => (chars(r.start), chars(r.end)),
        None => (0, answer.chars().count()),
    }
}

/// Split `answer` (to `question`) into atomic claims with `model`.
pub async fn decompose(
    agents: &AgentSet,
    model: &dyn ChatModel,
    recorder: &RunRecorder,
    question: &str,
    answer: &str,
) -> Result<(Vec<AtomicClaim>, Decomposition), AgentError> {
    let cfg = &agents.decomposer;
    let prompt = agents.render(
        cfg.prompt.as_deref().unwrap_or("decompose.j2"),
        minijinja::context! { question => question, answer => answer },
    )?;
    let params = SamplingParams {
        temperature: cfg.temperature.unwrap_or(0.0),
        max_tokens: cfg.max_tokens.unwrap_or(384),
        ..Default::default()
    };
    let call = StructuredCall {
        agent: "decomposer",
        prompt,
        params,
        purpose: Purpose::Decompose,
        schema: &agents.decomposer_schema,
        keys: "key claims: a list of {\"claim\", \"source\"}",
        max_reasks: cfg.max_reasks.unwrap_or(1),
    };
    let reply: Option<Reply> = ask_structured(model, recorder, call).await?;
    let claims: Vec<AtomicClaim> = reply
        .map(|r| {
            r.claims
                .into_iter()
                .filter(|c| !c.claim.trim().is_empty())
                .map(|c| {
                    let (start, end) = locate(answer, &c.source, &c.claim);
                    AtomicClaim { text: c.claim.trim().to_string(), start, end }
                })
                .collect()
        })
        .unwrap_or_default();
    if !claims.is_empty() {
        recorder.event("decomposer", "decomposition", json!({ "claims": claims })).await?;
        return Ok((claims, Decomposition::Decomposed));
    }
    let claims = sentence_claims(answer);
    recorder
        .event("decomposer", "decomposition_fallback", json!({ "reason": "no valid claims", "claims": claims }))
        .await?;
    Ok((claims, Decomposition::Sentences))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_come_from_the_quote_or_the_closest_sentence() {
        let answer = "Café au lait is sweet. The Moon is made of cheese. 2 + 2 = 4.";
        let (s, e) = locate(answer, "The Moon is made of cheese.", "The Moon is made of cheese.");
        let chars: Vec<char> = answer.chars().collect();
        assert_eq!(chars[s..e].iter().collect::<String>(), "The Moon is made of cheese.");
        // No exact quote: the sentence that shares most words.
        let (s, e) = locate(answer, "", "Earth's moon consists of cheese.");
        assert_eq!(chars[s..e].iter().collect::<String>(), "The Moon is made of cheese.");
        assert_eq!(locate(answer, "", "Nothing shared here xyz."), (0, chars.len()));
    }

    #[test]
    fn sentences_are_the_fallback_claims() {
        let claims = sentence_claims("2 + 2 = 4. The Moon is made of cheese.");
        let texts: Vec<&str> = claims.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["2 + 2 = 4.", "The Moon is made of cheese."]);
        assert_eq!((claims[1].start, claims[1].end), (11, 38));
    }
}
