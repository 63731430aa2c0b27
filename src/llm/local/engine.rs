//! Inference with llama.cpp: calls decoded together over KV-cache sequences
//! (continuous batching), prompt prefixes reused across calls, sampling,
//! log-probabilities and scoring.
//!
//! Runs on the backend's worker thread only; nothing here is async. Each step builds one
//! llama.cpp batch: the next token of every generating call first, then prompt tokens
//! of calls still reading their prompts, up to [`BATCH_TOKENS`] (llama.cpp server's
//! order, so a long prompt does not stall generation). With one sequence and no reuse
//! ([`Decoding::DETERMINISTIC`]) every call decodes alone from an empty KV cache, in the
//! same batches as before batching existed, so reruns are bit-identical.

use std::{
    collections::VecDeque,
    num::NonZeroU32,
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc, Arc,
    },
};

use llama_cpp_2::{
    context::{params::LlamaContextParams, LlamaContext},
    llama_backend::LlamaBackend,
    llama_batch::LlamaBatch,
    model::LlamaModel,
    token::LlamaToken,
};

use super::{
    slots::{Placement, Slots},
    work::{Job, Step, Work},
    CONTEXT_TOKENS,
};
use crate::llm::{Decoding, LlmError};

/// Tokens decoded per llama.cpp batch.
pub const BATCH_TOKENS: usize = 512;

/// What the engine has done so far, for `model` commands, benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Sequences in the context.
    pub sequences: usize,
    /// Calls running on a sequence now.
    pub busy: usize,
    /// Calls waiting for a free sequence.
    pub queued: usize,
    /// Calls placed on a sequence since the model loaded.
    pub calls: u64,
    /// Their prompt tokens, in all.
    pub prompt_tokens: u64,
    /// Of those, tokens whose KV state was reused rather than decoded.
    pub reused_tokens: u64,
    /// Calls that started from a prefix copied from another sequence.
    pub copies: u64,
    /// llama.cpp batches decoded.
    pub batches: u64,
}

/// Counters shared between the worker thread and the backend.
#[derive(Debug, Default)]
pub struct Counters {
    sequences: AtomicUsize,
    busy: AtomicUsize,
    queued: AtomicUsize,
    calls: AtomicU64,
    prompt_tokens: AtomicU64,
    reused_tokens: AtomicU64,
    copies: AtomicU64,
    batches: AtomicU64,
}

impl Counters {
    /// A snapshot.
    pub fn snapshot(&self) -> DecodeStats {
        DecodeStats {
            sequences: self.sequences.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            reused_tokens: self.reused_tokens.load(Ordering::Relaxed),
            copies: self.copies.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
        }
    }
}

pub(super) fn infer(what: &str, e: impl std::fmt::Display) -> LlmError {
    LlmError::Inference(format!("{what}: {e}"))
}

/// A call read from the queue, tokenized, waiting for a sequence.
struct Pending {
    tokens: Vec<LlamaToken>,
    work: Work,
}

/// Where one slot's tokens sit in the batch being decoded.
struct Segment {
    slot: usize,
    /// Index of its first token in the batch.
    start: usize,
    /// Its tokens (positions follow the slot's cache).
    tokens: Vec<LlamaToken>,
}

/// A model with its context and the calls on it; one per worker thread.
pub struct Engine<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    decoding: Decoding,
    slots: Slots,
    /// The call on each slot.
    active: Vec<Option<(Vec<LlamaToken>, Work)>>,
    queue: VecDeque<Pending>,
    counters: Arc<Counters>,
}

impl<'m> Engine<'m> {
    /// A context with [`CONTEXT_TOKENS`] for each of `decoding.sequences` sequences, on
    /// `threads` threads, each sequence in its own KV stream (llama.cpp divides `n_ctx`
    /// among them). A cache that cannot be allocated is an error here, never later.
    pub fn new(
        backend: &LlamaBackend,
        model: &'m LlamaModel,
        threads: i32,
        decoding: Decoding,
        counters: Arc<Counters>,
    ) -> Result<Self, LlmError> {
        let sequences = decoding.sequences.max(1);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(CONTEXT_TOKENS * sequences))
            .with_n_seq_max(sequences)
            // One KV stream per sequence. With a unified cache (all sequences in one
            // buffer) short prompts decoded together moved the judge's label
            // log-probabilities by up to 0.5 nats against one call at a time; with
            // separate streams they were bit-identical. (Batch shapes still matter:
            // see `tests/local_model/batching.rs`.)
            .with_kv_unified(false)
            .with_n_batch(BATCH_TOKENS as u32)
            .with_n_ubatch(BATCH_TOKENS as u32)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let ctx = model.new_context(backend, params).map_err(|e| {
            infer(&format!("cannot create a context of {sequences} sequences x {CONTEXT_TOKENS} tokens"), e)
        })?;
        counters.sequences.store(sequences as usize, Ordering::Relaxed);
        Ok(Self {
            model,
            ctx,
            decoding,
            slots: Slots::new(sequences as usize, decoding.prefix_reuse),
            active: (0..sequences).map(|_| None).collect(),
            queue: VecDeque::new(),
            counters,
        })
    }

    /// Answer jobs until every sender is gone and no call is left.
    pub fn run(mut self, jobs: mpsc::Receiver<Job>) {
        let mut open = true;
        loop {
            let idle = self.slots.busy() == 0 && self.queue.is_empty();
            if idle {
                if !open {
                    return;
                }
                match jobs.recv() {
                    Ok(job) => self.accept(job),
                    Err(_) => return,
                }
            }
            loop {
                match jobs.try_recv() {
                    Ok(job) => self.accept(job),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            self.drop_cancelled();
            self.place_queued();
            self.publish();
            if self.slots.busy() > 0 {
                // A panic inside llama-cpp-2 fails the calls in flight, not the process.
                if std::panic::catch_unwind(AssertUnwindSafe(|| self.step())).is_err() {
                    self.fail_all("llama.cpp panicked during decoding");
                }
            }
        }
    }

    /// Tokenize a job and queue it; one that cannot run is answered at once.
    fn accept(&mut self, job: Job) {
        let vocab = self.model.vocab();
        match job.prepare(|text, special| vocab.tokenize(text.as_bytes(), special, special)) {
            Ok((tokens, work)) => self.queue.push_back(Pending { tokens, work }),
            Err((work, error)) => work.fail(error),
        }
    }

    /// Free the slots of calls whose caller has gone (a cancelled request or a dropped
    /// future): their cached tokens stay, as a prefix later calls may reuse.
    fn drop_cancelled(&mut self) {
        self.queue.retain(|p| !p.work.abandoned());
        for (i, call) in self.active.iter_mut().enumerate() {
            if call.as_ref().is_some_and(|(_, w)| w.abandoned()) {
                *call = None;
                self.slots.get_mut(i).busy = false;
            }
        }
    }

    /// Give queued calls the free slots, oldest first.
    fn place_queued(&mut self) {
        while let Some(pending) = self.queue.front() {
            let Some(placement) = self.slots.place(&pending.tokens, pending.work.logits_from()) else { break };
            let Some(pending) = self.queue.pop_front() else { break };
            let placement = self.prepare_slot(placement);
            self.slots.take(placement, &pending.tokens);
            self.counters.calls.fetch_add(1, Ordering::Relaxed);
            self.counters.prompt_tokens.fetch_add(pending.tokens.len() as u64, Ordering::Relaxed);
            self.counters.reused_tokens.fetch_add(placement.reused() as u64, Ordering::Relaxed);
            self.active[placement.slot] = Some((pending.tokens, pending.work));
        }
    }

    /// Trim or copy the slot's KV state as `placement` says; falls back to an empty
    /// sequence when llama.cpp refuses a partial removal.
    fn prepare_slot(&mut self, placement: Placement) -> Placement {
        let seq = self.slots.get(placement.slot).seq;
        let empty = Placement { keep: 0, copy_from: None, ..placement };
        if self.decoding.is_deterministic() {
            // Exactly the empty cache every call had before reuse and batching.
            self.ctx.clear_kv_cache();
            return empty;
        }
        let prepared = match placement.copy_from {
            // Between streams llama.cpp copies whole sequences only (a partial range
            // aborts the process): copy all of the donor's, then drop what follows the
            // shared prefix. The buffer copy happens at the next decode, before the
            // donor's own tokens of that batch are added.
            Some((donor, n)) => {
                let donor_seq = self.slots.get(donor).seq;
                self.ctx.copy_kv_cache_seq(donor_seq, seq, None, None).is_ok()
                    && matches!(self.ctx.clear_kv_cache_seq(Some(seq as u32), Some(n as u32), None), Ok(true))
            }
            None => {
                matches!(self.ctx.clear_kv_cache_seq(Some(seq as u32), Some(placement.keep as u32), None), Ok(true))
            }
        };
        if !prepared {
            self.clear_slot(placement.slot);
            return empty;
        }
        if placement.copy_from.is_some() {
            self.counters.copies.fetch_add(1, Ordering::Relaxed);
        }
        placement
    }

    /// Drop a slot's whole KV state (removing a whole sequence always succeeds).
    fn clear_slot(&mut self, slot: usize) {
        let seq = self.slots.get(slot).seq;
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        self.slots.get_mut(slot).cached.clear();
    }

    fn publish(&self) {
        self.counters.busy.store(self.slots.busy(), Ordering::Relaxed);
        self.counters.queued.store(self.queue.len(), Ordering::Relaxed);
    }

    /// Decode one batch and hand each call its logits.
    fn step(&mut self) {
        let segments = self.plan();
        if segments.is_empty() {
            // Every busy call has something to decode until it is done; were one stuck,
            // the loop would spin on it forever. Fail it instead.
            for slot in 0..self.slots_len() {
                if self.active[slot].is_some() {
                    self.finish(slot, Err(LlmError::Inference("internal: a call had nothing to decode".into())), true);
                }
            }
            return;
        }
        let total: usize = segments.iter().map(|s| s.tokens.len()).sum();
        let mut batch = LlamaBatch::new(total.max(1), 1);
        for seg in &segments {
            let slot = self.slots.get(seg.slot);
            let base = slot.cached.len();
            let Some((tokens, work)) = &self.active[seg.slot] else { continue };
            for (j, token) in seg.tokens.iter().enumerate() {
                let pos = base + j;
                if let Err(e) = batch.add(*token, pos as i32, &[slot.seq], work.wants_logits(pos, tokens)) {
                    self.fail_all(&format!("cannot build a batch: {e}"));
                    return;
                }
            }
        }
        // Each sequence has its own KV stream holding at most a call's context, so a
        // batch never waits for room another sequence could give up: a failure here
        // fails the calls in the batch.
        if let Err(e) = self.ctx.decode(&mut batch) {
            for seg in &segments {
                self.finish(seg.slot, Err(infer("decode", &e)), true);
            }
            return;
        }
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        for seg in segments {
            self.deliver(seg);
        }
    }

    fn slots_len(&self) -> usize {
        self.active.len()
    }

    /// What each busy slot feeds this step: generating calls first, one token each,
    /// then prompt tokens while the batch has room.
    fn plan(&self) -> Vec<Segment> {
        let mut budget = BATCH_TOKENS;
        let mut segments = Vec::new();
        let mut start = 0;
        for generating in [true, false] {
            for (slot, call) in self.active.iter().enumerate() {
                let Some((tokens, work)) = call else { continue };
                let cached = self.slots.get(slot).cached.len();
                let (feed, g) = work.input(tokens, cached);
                if g != generating || feed.is_empty() || budget == 0 {
                    continue;
                }
                let n = feed.len().min(budget);
                segments.push(Segment { slot, start, tokens: feed[..n].to_vec() });
                start += n;
                budget -= n;
            }
        }
        segments
    }

    /// Hand a decoded segment's logits to its call and move the call on.
    fn deliver(&mut self, seg: Segment) {
        let Some((tokens, mut work)) = self.active[seg.slot].take() else { return };
        let base = self.slots.get(seg.slot).cached.len();
        for j in 0..seg.tokens.len() {
            let pos = base + j;
            if work.wants_logits(pos, &tokens) {
                work.on_logits(pos, &tokens, (seg.start + j) as i32, &self.ctx, self.model);
            }
        }
        self.slots.get_mut(seg.slot).cached.extend_from_slice(&seg.tokens);
        self.active[seg.slot] = Some((tokens, work));
        loop {
            let cached = self.slots.get(seg.slot).cached.len();
            let Some((tokens, work)) = self.active[seg.slot].as_mut() else { return };
            match work.after_segment(tokens, cached) {
                Step::Continue => return,
                Step::Done => return self.finish(seg.slot, Ok(()), false),
                Step::Rewind(len) => {
                    let seq = self.slots.get(seg.slot).seq as u32;
                    if !matches!(self.ctx.clear_kv_cache_seq(Some(seq), Some(len as u32), None), Ok(true)) {
                        let e = infer("cannot drop a continuation's KV state", "llama_memory_seq_rm refused");
                        return self.finish(seg.slot, Err(e), true);
                    }
                    self.slots.get_mut(seg.slot).cached.truncate(len);
                }
            }
        }
    }

    /// End the call on `slot`: reply (its result, or `error`), free the slot, and with
    /// `clear` drop the slot's KV state (after a failure it may be partial).
    fn finish(&mut self, slot: usize, result: Result<(), LlmError>, clear: bool) {
        let call = self.active[slot].take();
        if clear {
            self.clear_slot(slot);
        }
        // Free the slot before replying, so a caller that reads the stats after its
        // reply sees its call gone.
        self.slots.get_mut(slot).busy = false;
        self.publish();
        if let Some((tokens, work)) = call {
            match result {
                Ok(()) => work.reply(&tokens, self.model),
                Err(e) => work.fail(e),
            }
        }
    }

    /// Fail every call in flight and empty the KV cache (after a panic its state is unknown).
    fn fail_all(&mut self, why: &str) {
        for slot in 0..self.slots_len() {
            if let Some((_, work)) = self.active[slot].take() {
                work.fail(LlmError::Inference(why.to_string()));
            }
            let s = self.slots.get_mut(slot);
            s.busy = false;
            s.cached.clear();
        }
        self.ctx.clear_kv_cache();
        self.publish();
    }
}
