//! Inference with llama.cpp: prompt decoding, sampling, log-probabilities, scoring.
//!
//! Runs on the backend's worker thread only; nothing here is async.

use std::num::NonZeroU32;

use llama_cpp_2::{
    context::{params::LlamaContextParams, LlamaContext},
    llama_backend::LlamaBackend,
    llama_batch::LlamaBatch,
    model::LlamaModel,
    sampling::LlamaSampler,
    token::LlamaToken,
};

use crate::llm::{FinishReason, LlmError, SamplingParams, TokenLogprob};

/// Context window given to each call.
pub const CONTEXT_TOKENS: u32 = 4096;
/// Tokens decoded per llama.cpp batch.
const BATCH_TOKENS: usize = 512;

/// What one generation produced.
#[derive(Debug)]
pub struct Generated {
    pub text: String,
    pub finish_reason: FinishReason,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// A model with its context; one per worker thread.
pub struct Engine<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
}

fn infer(what: &str, e: impl std::fmt::Display) -> LlmError {
    LlmError::Inference(format!("{what}: {e}"))
}

impl<'m> Engine<'m> {
    /// A context of [`CONTEXT_TOKENS`] on `threads` threads.
    pub fn new(backend: &LlamaBackend, model: &'m LlamaModel, threads: i32) -> Result<Self, LlmError> {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(CONTEXT_TOKENS))
            .with_n_batch(BATCH_TOKENS as u32)
            .with_n_ubatch(BATCH_TOKENS as u32)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let ctx = model.new_context(backend, params).map_err(|e| infer("cannot create a context", e))?;
        Ok(Self { model, ctx })
    }

    /// Tokenize prompt text; special tokens written in the template are parsed as such.
    pub fn tokenize(&self, text: &str, add_special: bool) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), add_special, true)
    }

    /// Decode `tokens` from position 0; `want_logits(i)` marks positions whose logits are read.
    /// Calls `on_logits(i, logits)` for each marked position, in order.
    fn decode_all(
        &mut self,
        tokens: &[LlamaToken],
        want_logits: impl Fn(usize) -> bool,
        mut on_logits: impl FnMut(usize, &[f32]),
    ) -> Result<(), LlmError> {
        if tokens.len() >= CONTEXT_TOKENS as usize {
            return Err(LlmError::Inference(format!(
                "input of {} tokens does not fit the {CONTEXT_TOKENS}-token context",
                tokens.len()
            )));
        }
        self.ctx.clear_kv_cache();
        let mut batch = LlamaBatch::new(BATCH_TOKENS, 1);
        for (chunk_no, chunk) in tokens.chunks(BATCH_TOKENS).enumerate() {
            batch.clear();
            let base = chunk_no * BATCH_TOKENS;
            for (j, token) in chunk.iter().enumerate() {
                batch.add(*token, (base + j) as i32, &[0], want_logits(base + j)).map_err(|e| infer("batch", e))?;
            }
            self.ctx.decode(&mut batch).map_err(|e| infer("decode", e))?;
            for j in 0..chunk.len() {
                if want_logits(base + j) {
                    on_logits(base + j, self.ctx.get_logits_ith(j as i32));
                }
            }
        }
        Ok(())
    }

    /// Generate from `prompt` under `params`; `seed` drives sampling when temperature > 0.
    pub fn generate(&mut self, prompt: &str, params: &SamplingParams, seed: u32) -> Result<Generated, LlmError> {
        let tokens = self.tokenize(prompt, true);
        let last = tokens.len().saturating_sub(1);
        let want_lp = params.logprobs;
        self.decode_all(&tokens, |i| i == last, |_, _| ())?;

        let mut sampler = if params.temperature <= 0.0 {
            LlamaSampler::greedy()
        } else {
            LlamaSampler::chain_simple([
                LlamaSampler::top_p(params.top_p.clamp(0.0, 1.0), 1),
                LlamaSampler::temp(params.temperature),
                LlamaSampler::dist(seed),
            ])
        };
        let vocab = self.model.vocab();
        let mut bytes: Vec<u8> = Vec::new();
        let mut logprobs = Vec::new();
        let mut batch = LlamaBatch::new(1, 1);
        let mut pos = tokens.len();
        // The prompt's last token sits at this index of the last decoded batch.
        let mut logits_index = (last % BATCH_TOKENS) as i32;
        let mut generated = 0u32;
        let mut finish = FinishReason::Length;
        while generated < params.max_tokens {
            let token = sampler.sample(&self.ctx, logits_index);
            if want_lp {
                let lp = log_softmax_at(self.ctx.get_logits_ith(logits_index), token.0 as usize);
                let piece = vocab.token_to_piece(token, true, None);
                logprobs.push(TokenLogprob {
                    token: String::from_utf8_lossy(&piece).into_owned(),
                    logprob: lp,
                    top: vec![],
                });
            }
            generated += 1;
            if vocab.is_eog(token) {
                finish = FinishReason::Stop;
                break;
            }
            bytes.extend_from_slice(&vocab.token_to_piece(token, false, None));
            if let Some(cut) = find_stop(&bytes, &params.stop) {
                bytes.truncate(cut);
                finish = FinishReason::Stop;
                break;
            }
            if pos + 1 >= CONTEXT_TOKENS as usize {
                break;
            }
            batch.clear();
            batch.add(token, pos as i32, &[0], true).map_err(|e| infer("batch", e))?;
            self.ctx.decode(&mut batch).map_err(|e| infer("decode", e))?;
            pos += 1;
            logits_index = 0;
        }
        Ok(Generated {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            finish_reason: finish,
            prompt_tokens: tokens.len() as u32,
            completion_tokens: generated,
            logprobs: want_lp.then_some(logprobs),
        })
    }

    /// Log-probability of each token of `continuation` after `prompt`.
    pub fn score(&mut self, prompt: &str, continuation: &str) -> Result<(Vec<TokenLogprob>, u32), LlmError> {
        let mut tokens = self.tokenize(prompt, true);
        let prompt_len = tokens.len();
        if prompt_len == 0 {
            return Err(LlmError::Inference("cannot score after an empty prompt".into()));
        }
        // The continuation is plain text: its special-looking strings are not parsed.
        let cont = self.model.vocab().tokenize(continuation.as_bytes(), false, false);
        tokens.extend_from_slice(&cont);
        let total = tokens.len();
        let mut scores = vec![0.0f64; cont.len()];
        self.decode_all(
            &tokens,
            |i| i + 1 >= prompt_len && i + 1 < total,
            |i, logits| scores[i + 1 - prompt_len] = log_softmax_at(logits, tokens[i + 1].0 as usize),
        )?;
        let vocab = self.model.vocab();
        let out = cont
            .iter()
            .zip(scores)
            .map(|(t, lp)| TokenLogprob {
                token: String::from_utf8_lossy(&vocab.token_to_piece(*t, true, None)).into_owned(),
                logprob: lp,
                top: vec![],
            })
            .collect();
        Ok((out, prompt_len as u32))
    }
}

impl Engine<'_> {
    /// Log-probabilities of each token of each of `continuations` after `prompt`, the
    /// prompt decoded once: the last prompt position's logits score every
    /// continuation's first token, and a longer continuation's later tokens are decoded
    /// after the prompt's KV state and removed again (`llama_memory_seq_rm`). The
    /// logits can differ in the last bits from [`Engine::score`]'s, which decodes
    /// prompt and continuation in one batch of another shape.
    pub fn score_many(&mut self, prompt: &str, continuations: &[String]) -> Result<Vec<Vec<TokenLogprob>>, LlmError> {
        let tokens = self.tokenize(prompt, true);
        let prompt_len = tokens.len();
        if prompt_len == 0 {
            return Err(LlmError::Inference("cannot score after an empty prompt".into()));
        }
        let conts: Vec<Vec<LlamaToken>> =
            continuations.iter().map(|c| self.model.vocab().tokenize(c.as_bytes(), false, false)).collect();
        let longest = conts.iter().map(Vec::len).max().unwrap_or(0);
        if prompt_len + longest >= CONTEXT_TOKENS as usize {
            return Err(LlmError::Inference(format!(
                "input of {} tokens does not fit the {CONTEXT_TOKENS}-token context",
                prompt_len + longest
            )));
        }
        let mut last = Vec::new();
        self.decode_all(&tokens, |i| i + 1 == prompt_len, |_, logits| last = logits.to_vec())?;
        let vocab = self.model.vocab();
        let piece = |t: &LlamaToken| String::from_utf8_lossy(&vocab.token_to_piece(*t, true, None)).into_owned();
        let mut out = Vec::with_capacity(conts.len());
        for cont in &conts {
            let mut scores = Vec::with_capacity(cont.len());
            if let Some(first) = cont.first() {
                scores.push(log_softmax_at(&last, first.0 as usize));
            }
            if cont.len() > 1 {
                // Every token but the last is fed; each one's logits score the next.
                let mut batch = LlamaBatch::new(cont.len(), 1);
                for (j, token) in cont[..cont.len() - 1].iter().enumerate() {
                    batch.add(*token, (prompt_len + j) as i32, &[0], true).map_err(|e| infer("batch", e))?;
                }
                self.ctx.decode(&mut batch).map_err(|e| infer("decode", e))?;
                for j in 0..cont.len() - 1 {
                    scores.push(log_softmax_at(self.ctx.get_logits_ith(j as i32), cont[j + 1].0 as usize));
                }
                let removed = self
                    .ctx
                    .clear_kv_cache_seq(Some(0), Some(prompt_len as u32), None)
                    .map_err(|e| infer("cannot drop a continuation's KV state", e))?;
                if !removed {
                    return Err(infer("cannot drop a continuation's KV state", "llama_memory_seq_rm refused"));
                }
            }
            out.push(
                cont.iter()
                    .zip(scores)
                    .map(|(t, logprob)| TokenLogprob { token: piece(t), logprob, top: vec![] })
                    .collect(),
            );
        }
        Ok(out)
    }
}

/// Natural-log softmax of `logits` at `index`, computed stably in f64.
fn log_softmax_at(logits: &[f32], index: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| ((l as f64) - max).exp()).sum();
    logits.get(index).map(|&l| (l as f64) - max - sum.ln()).unwrap_or(f64::NEG_INFINITY)
}

/// Byte offset of the earliest stop string in `bytes`, if any.
fn find_stop(bytes: &[u8], stops: &[String]) -> Option<usize> {
    stops.iter().filter(|s| !s.is_empty()).filter_map(|s| bytes.windows(s.len()).position(|w| w == s.as_bytes())).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_sums_to_one() {
        let logits = [1.0f32, 2.0, 3.0, -4.0];
        let total: f64 = (0..4).map(|i| log_softmax_at(&logits, i).exp()).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert!(log_softmax_at(&logits, 2) > log_softmax_at(&logits, 1));
    }

    #[test]
    fn finds_the_earliest_stop() {
        let stops = vec!["\n\n".to_string(), "END".to_string()];
        assert_eq!(find_stop(b"abc END x\n\n", &stops), Some(4));
        assert_eq!(find_stop(b"abc", &stops), None);
        assert_eq!(find_stop(b"abc", &[String::new()]), None);
    }
}
