//! Does an OpenAI-compatible server continue a prefilled assistant turn?
//!
//! Servers differ: vLLM continues the trailing assistant message when asked
//! (`continue_final_message`), others close the turn and open a new one, so the
//! "continuation" is a fresh answer glued to the prefix. Which one a server does shows
//! in the prompt token counts it reports, whatever its tokenizer: the same question
//! asked fresh, with a short prefix marked to be continued, and with the prefix as an
//! ordinary closed turn. A server that honours the mark renders the continued prompt
//! shorter than the closed one (no end-of-turn and no new assistant header); one that
//! always continues a trailing assistant message renders both alike, but only the
//! prefix longer than the fresh question.

use super::{ChatRequest, Completion, Message, PrefillSupport, SamplingParams};

/// The prefilled text: one token in the tokenizers we know.
pub(super) const PREFIX: &str = "The";

/// The three probe requests, in order: fresh, continued, closed. Each asks for one token.
pub(super) fn requests() -> [(ChatRequest, bool); 3] {
    let question = Message::user("Name a colour.");
    let params = SamplingParams { max_tokens: 1, temperature: 0.0, ..Default::default() };
    let ask = |messages: Vec<Message>| ChatRequest::new(messages).with_params(params.clone());
    let prefilled = vec![question.clone(), Message::assistant(PREFIX)];
    [(ask(vec![question]), false), (ask(prefilled.clone()), true), (ask(prefilled), false)]
}

/// The verdict from the three replies' prompt token counts.
pub(super) fn verdict(replies: &[Completion; 3]) -> PrefillSupport {
    let [fresh, continued, closed] = replies.each_ref().map(|c| c.usage.prompt_tokens);
    if fresh == 0 || continued == 0 || closed == 0 {
        return PrefillSupport::Unknown { reason: "the server reported no prompt token counts".into() };
    }
    // Marked and closed rendered differently: the mark was honoured. Rendered alike:
    // continued only if the prefix alone (one token, give or take a boundary token)
    // was added to the fresh prompt.
    let honoured = continued < closed || continued.saturating_sub(fresh) <= 1;
    PrefillSupport::Probed {
        prefix: PREFIX.into(),
        fresh_tokens: fresh,
        continued_tokens: continued,
        closed_tokens: closed,
        honoured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Usage;

    fn reply(prompt_tokens: u32) -> Completion {
        Completion {
            model: "m".into(),
            choices: vec![],
            usage: Usage { prompt_tokens, completion_tokens: 1 },
            latency_ms: 0,
            rendered_prompt: None,
            seed: None,
        }
    }

    #[test]
    fn the_token_counts_tell_a_continued_turn_from_a_closed_one() {
        let verdict_of = |f, c, k| verdict(&[reply(f), reply(c), reply(k)]).honoured();
        // llama-cpp-python's server (measured): the mark is ignored, the turn closed.
        assert!(!verdict_of(34, 41, 41));
        // vLLM with continue_final_message: the continued prompt stops inside the turn.
        assert!(verdict_of(34, 35, 41));
        // A server that always continues a trailing assistant message.
        assert!(verdict_of(34, 35, 35));
        // A template with no assistant header: closing adds only an end-of-turn token.
        assert!(!verdict_of(20, 22, 22));
        assert!(matches!(verdict(&[reply(0), reply(0), reply(0)]), PrefillSupport::Unknown { .. }));
    }
}
