//! What a call asks of the engine and how it moves along as batches are decoded:
//! generating (prompt, then one token a step), scoring one continuation (prompt and
//! continuation read together), or scoring several continuations of one prompt (the
//! prompt read once; the last prompt position's logits score every continuation's first
//! token, and a longer continuation's later tokens are decoded after the prompt and
//! removed again with `llama_memory_seq_rm`).

use llama_cpp_2::{context::LlamaContext, model::LlamaModel, sampling::LlamaSampler, token::LlamaToken};
use tokio::sync::oneshot;

use super::CONTEXT_TOKENS;
use crate::llm::{FinishReason, LlmError, SamplingParams, TokenLogprob};

/// What one generation produced.
#[derive(Debug)]
pub struct Generated {
    pub text: String,
    pub finish_reason: FinishReason,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub logprobs: Option<Vec<TokenLogprob>>,
}

type Reply<T> = oneshot::Sender<Result<T, LlmError>>;

/// A request sent to the model thread.
pub enum Job {
    /// Generate from a rendered prompt; `seed` drives sampling when temperature > 0.
    Generate { prompt: String, params: SamplingParams, seed: u32, reply: Reply<Generated> },
    /// Log-probability of each token of `continuation` after `prompt`.
    Score { prompt: String, continuation: String, reply: Reply<Vec<TokenLogprob>> },
    /// Several continuations of one prompt, the prompt decoded once.
    ScoreMany { prompt: String, continuations: Vec<String>, reply: Reply<Vec<Vec<TokenLogprob>>> },
}

/// A call in progress.
pub enum Work {
    Generate(Box<Generation>),
    Score {
        prompt_len: usize,
        scores: Vec<f64>,
        reply: Reply<Vec<TokenLogprob>>,
    },
    ScoreMany {
        prompt_len: usize,
        conts: Vec<Vec<LlamaToken>>,
        scores: Vec<Vec<f64>>,
        /// The continuation of more than one token being decoded (`conts.len()` when none is left).
        next: usize,
        reply: Reply<Vec<Vec<TokenLogprob>>>,
    },
}

/// A generation's state between steps.
pub struct Generation {
    params: SamplingParams,
    sampler: LlamaSampler,
    bytes: Vec<u8>,
    logprobs: Vec<TokenLogprob>,
    generated: u32,
    prompt_len: usize,
    /// The sampled token to feed next.
    next: Option<LlamaToken>,
    finish: Option<FinishReason>,
    reply: Reply<Generated>,
}

/// What a call does after a decoded segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It has more to decode.
    Continue,
    /// Drop its KV state from this position on, then ask again.
    Rewind(usize),
    /// It has its answer.
    Done,
}

fn too_long(tokens: usize) -> LlmError {
    LlmError::Inference(format!("input of {tokens} tokens does not fit the {CONTEXT_TOKENS}-token context"))
}

impl Job {
    /// Tokenize with `tokenize(text, special)` (special: add BOS and parse special tokens,
    /// as for a rendered prompt; continuations are plain text). Returns the tokens the
    /// call reads and its state, or the state with the reason it cannot run.
    #[allow(clippy::result_large_err)]
    pub fn prepare(
        self,
        tokenize: impl Fn(&str, bool) -> Vec<LlamaToken>,
    ) -> Result<(Vec<LlamaToken>, Work), (Work, LlmError)> {
        match self {
            Job::Generate { prompt, params, seed, reply } => {
                let tokens = tokenize(&prompt, true);
                let sampler = if params.temperature <= 0.0 {
                    LlamaSampler::greedy()
                } else {
                    LlamaSampler::chain_simple([
                        LlamaSampler::top_p(params.top_p.clamp(0.0, 1.0), 1),
                        LlamaSampler::temp(params.temperature),
                        LlamaSampler::dist(seed),
                    ])
                };
                let work = Work::Generate(Box::new(Generation {
                    params,
                    sampler,
                    bytes: Vec::new(),
                    logprobs: Vec::new(),
                    generated: 0,
                    prompt_len: tokens.len(),
                    next: None,
                    finish: None,
                    reply,
                }));
                match tokens.len() {
                    0 => Err((work, LlmError::Inference("cannot generate after an empty prompt".into()))),
                    n if n >= CONTEXT_TOKENS as usize => Err((work, too_long(n))),
                    _ => Ok((tokens, work)),
                }
            }
            Job::Score { prompt, continuation, reply } => {
                let mut tokens = tokenize(&prompt, true);
                let prompt_len = tokens.len();
                tokens.extend(tokenize(&continuation, false));
                let work = Work::Score { prompt_len, scores: vec![0.0; tokens.len() - prompt_len], reply };
                match tokens.len() {
                    _ if prompt_len == 0 => {
                        Err((work, LlmError::Inference("cannot score after an empty prompt".into())))
                    }
                    n if n >= CONTEXT_TOKENS as usize => Err((work, too_long(n))),
                    _ => Ok((tokens, work)),
                }
            }
            Job::ScoreMany { prompt, continuations, reply } => {
                let tokens = tokenize(&prompt, true);
                let prompt_len = tokens.len();
                let conts: Vec<Vec<LlamaToken>> = continuations.iter().map(|c| tokenize(c, false)).collect();
                let longest = conts.iter().map(Vec::len).max().unwrap_or(0);
                let scores = conts.iter().map(|c| Vec::with_capacity(c.len())).collect();
                let next = conts.len();
                let work = Work::ScoreMany { prompt_len, conts, scores, next, reply };
                if prompt_len == 0 {
                    return Err((work, LlmError::Inference("cannot score after an empty prompt".into())));
                }
                if prompt_len + longest >= CONTEXT_TOKENS as usize {
                    return Err((work, too_long(prompt_len + longest)));
                }
                Ok((tokens, work))
            }
        }
    }
}

impl Work {
    /// The caller stopped waiting (its future was dropped).
    pub fn abandoned(&self) -> bool {
        match self {
            Work::Generate(g) => g.reply.is_closed(),
            Work::Score { reply, .. } => reply.is_closed(),
            Work::ScoreMany { reply, .. } => reply.is_closed(),
        }
    }

    /// The first position whose logits the call reads: a reused prefix stops before it.
    pub fn logits_from(&self) -> usize {
        match self {
            Work::Generate(g) => g.prompt_len.saturating_sub(1),
            Work::Score { prompt_len, .. } | Work::ScoreMany { prompt_len, .. } => prompt_len.saturating_sub(1),
        }
    }

    /// Tokens to feed from position `cached` on, and whether they are generated ones.
    pub fn input<'a>(&'a self, tokens: &'a [LlamaToken], cached: usize) -> (&'a [LlamaToken], bool) {
        match self {
            Work::Generate(_) if cached < tokens.len() => (&tokens[cached..], false),
            Work::Generate(g) => (g.next.as_slice(), true),
            Work::Score { .. } => (tokens.get(cached..).unwrap_or(&[]), false),
            Work::ScoreMany { prompt_len, .. } if cached < *prompt_len => (&tokens[cached..*prompt_len], false),
            Work::ScoreMany { prompt_len, conts, next, .. } => match conts.get(*next) {
                // Every token but the last is fed; each one's logits score the next.
                Some(c) => (c[..c.len() - 1].get(cached - prompt_len..).unwrap_or(&[]), false),
                None => (&[], false),
            },
        }
    }

    /// Whether the logits at position `pos` are read.
    pub fn wants_logits(&self, pos: usize, tokens: &[LlamaToken]) -> bool {
        match self {
            Work::Generate(_) => pos + 1 >= tokens.len(),
            Work::Score { prompt_len, .. } => pos + 1 >= *prompt_len && pos + 1 < tokens.len(),
            Work::ScoreMany { prompt_len, .. } => pos + 1 >= *prompt_len,
        }
    }

    /// Read the logits of position `pos`, at `index` of the batch just decoded.
    pub fn on_logits(&mut self, pos: usize, tokens: &[LlamaToken], index: i32, ctx: &LlamaContext, model: &LlamaModel) {
        match self {
            Work::Generate(g) => g.sample(pos, index, ctx, model),
            Work::Score { prompt_len, scores, .. } => {
                scores[pos + 1 - *prompt_len] = log_softmax_at(ctx.get_logits_ith(index), tokens[pos + 1].0 as usize);
            }
            Work::ScoreMany { prompt_len, conts, scores, next, .. } => {
                let logits = ctx.get_logits_ith(index);
                if pos + 1 == *prompt_len {
                    for (cont, score) in conts.iter().zip(scores.iter_mut()) {
                        if let Some(first) = cont.first() {
                            score.push(log_softmax_at(logits, first.0 as usize));
                        }
                    }
                    *next = conts.iter().position(|c| c.len() > 1).unwrap_or(conts.len());
                } else if let Some(cont) = conts.get(*next) {
                    let fed = pos - *prompt_len;
                    scores[*next].push(log_softmax_at(logits, cont[fed + 1].0 as usize));
                }
            }
        }
    }

    /// Where the call stands once its segment is in the cache (`cached` tokens).
    pub fn after_segment(&mut self, tokens: &[LlamaToken], cached: usize) -> Step {
        match self {
            Work::Generate(g) => {
                if g.finish.is_some() {
                    Step::Done
                } else {
                    Step::Continue
                }
            }
            Work::Score { .. } => {
                if cached >= tokens.len() {
                    Step::Done
                } else {
                    Step::Continue
                }
            }
            Work::ScoreMany { prompt_len, conts, next, .. } => {
                if cached < *prompt_len {
                    return Step::Continue;
                }
                let Some(cont) = conts.get(*next) else { return Step::Done };
                if cached == *prompt_len {
                    return Step::Continue;
                }
                if cached - *prompt_len < cont.len() - 1 {
                    return Step::Continue;
                }
                *next = (*next + 1..conts.len()).find(|&k| conts[k].len() > 1).unwrap_or(conts.len());
                Step::Rewind(*prompt_len)
            }
        }
    }

    /// Send the call's result (`tokens`: what it read).
    pub fn reply(self, tokens: &[LlamaToken], model: &LlamaModel) {
        let vocab = model.vocab();
        let piece = |t: &LlamaToken| String::from_utf8_lossy(&vocab.token_to_piece(*t, true, None)).into_owned();
        let scored = |tokens: &[LlamaToken], scores: Vec<f64>| -> Vec<TokenLogprob> {
            tokens
                .iter()
                .zip(scores)
                .map(|(t, logprob)| TokenLogprob { token: piece(t), logprob, top: vec![] })
                .collect()
        };
        match self {
            Work::Generate(g) => {
                let g = *g;
                let _ = g.reply.send(Ok(Generated {
                    text: String::from_utf8_lossy(&g.bytes).into_owned(),
                    finish_reason: g.finish.unwrap_or(FinishReason::Length),
                    prompt_tokens: g.prompt_len as u32,
                    completion_tokens: g.generated,
                    logprobs: g.params.logprobs.then_some(g.logprobs),
                }));
            }
            Work::Score { prompt_len, scores, reply } => {
                let _ = reply.send(Ok(scored(&tokens[prompt_len..], scores)));
            }
            Work::ScoreMany { conts, scores, reply, .. } => {
                let out = conts.iter().zip(scores).map(|(c, s)| scored(c, s)).collect();
                let _ = reply.send(Ok(out));
            }
        }
    }

    /// Send `error` as the call's result.
    pub fn fail(self, error: LlmError) {
        match self {
            Work::Generate(g) => drop(g.reply.send(Err(error))),
            Work::Score { reply, .. } => drop(reply.send(Err(error))),
            Work::ScoreMany { reply, .. } => drop(reply.send(Err(error))),
        }
    }
}

impl Generation {
    /// Sample the token after position `pos` and decide whether generation goes on.
    fn sample(&mut self, pos: usize, index: i32, ctx: &LlamaContext, model: &LlamaModel) {
        if self.finish.is_some() {
            return;
        }
        if self.generated >= self.params.max_tokens {
            self.finish = Some(FinishReason::Length);
            return;
        }
        let vocab = model.vocab();
        let token = self.sampler.sample(ctx, index);
        if self.params.logprobs {
            let lp = log_softmax_at(ctx.get_logits_ith(index), token.0 as usize);
            let piece = vocab.token_to_piece(token, true, None);
            self.logprobs.push(TokenLogprob {
                token: String::from_utf8_lossy(&piece).into_owned(),
                logprob: lp,
                top: vec![],
            });
        }
        self.generated += 1;
        self.next = None;
        if vocab.is_eog(token) {
            self.finish = Some(FinishReason::Stop);
            return;
        }
        self.bytes.extend_from_slice(&vocab.token_to_piece(token, false, None));
        if let Some(cut) = find_stop(&self.bytes, &self.params.stop) {
            self.bytes.truncate(cut);
            self.finish = Some(FinishReason::Stop);
            return;
        }
        // `pos + 1` tokens are in the cache; the sampled one would be the next.
        if pos + 2 >= CONTEXT_TOKENS as usize || self.generated >= self.params.max_tokens {
            self.finish = Some(FinishReason::Length);
            return;
        }
        self.next = Some(token);
    }
}

/// Natural-log softmax of `logits` at `index`, computed stably in f64.
pub fn log_softmax_at(logits: &[f32], index: usize) -> f64 {
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
