//! The KV cache's sequences: which call holds each, and which tokens each has cached.
//!
//! Pure bookkeeping, no llama.cpp: the engine asks [`Slots::place`] where a new call
//! should run and applies the answer to the KV cache itself. The policy is llama.cpp
//! server's (`cache_prompt`: an idle slot whose cached prompt shares the longest prefix
//! with the new one, else the least recently used), plus what the server does not do:
//! when another sequence, busy or idle, caches a prefix at least [`MIN_COPY_GAIN`]
//! tokens longer, the call starts from a copy of it (`llama_memory_seq_cp`).

use llama_cpp_2::token::LlamaToken;

/// Prompt tokens a copy from another sequence must save. Between KV streams llama.cpp
/// copies a whole sequence's buffer (about 94 MB for SmolLM2-135M at 4,096 tokens, tens
/// of milliseconds); 64 tokens of prefill on 2 cores take longer than that.
pub const MIN_COPY_GAIN: usize = 64;

/// One llama.cpp sequence.
#[derive(Debug)]
pub struct Slot {
    /// Its sequence id in the KV cache.
    pub seq: i32,
    /// Tokens whose KV state the sequence holds, at positions `0..cached.len()`.
    pub cached: Vec<LlamaToken>,
    /// A call is running on it.
    pub busy: bool,
    /// When it last took a call (a logical clock), for least-recently-used choice.
    last_used: u64,
}

/// Where a new call runs and how much of its prompt is already decoded there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Index of the idle slot that takes the call.
    pub slot: usize,
    /// Tokens of the prompt the slot keeps from its own cache.
    pub keep: usize,
    /// Instead, start from the first `.1` tokens of slot `.0`'s cache.
    pub copy_from: Option<(usize, usize)>,
}

impl Placement {
    /// Prompt tokens that need no decoding.
    pub fn reused(&self) -> usize {
        self.copy_from.map_or(self.keep, |(_, n)| n)
    }
}

/// Every sequence of one context.
#[derive(Debug)]
pub struct Slots {
    slots: Vec<Slot>,
    clock: u64,
    reuse: bool,
}

impl Slots {
    /// `sequences` empty slots; with `reuse` off every call starts from an empty sequence.
    pub fn new(sequences: usize, reuse: bool) -> Self {
        let slots = (0..sequences.max(1))
            .map(|i| Slot { seq: i as i32, cached: Vec::new(), busy: false, last_used: 0 })
            .collect();
        Self { slots, clock: 0, reuse }
    }

    /// The slot at `index`.
    pub fn get(&self, index: usize) -> &Slot {
        &self.slots[index]
    }

    /// The slot at `index`, to change.
    pub fn get_mut(&mut self, index: usize) -> &mut Slot {
        &mut self.slots[index]
    }

    /// Slots running a call.
    pub fn busy(&self) -> usize {
        self.slots.iter().filter(|s| s.busy).count()
    }

    /// Where a call with prompt `tokens` should run, or `None` when every slot is busy.
    /// `limit` caps the reused prefix: the call needs logits from position `limit` on,
    /// so at least the tokens from there are decoded again (llama.cpp server likewise
    /// re-evaluates a prompt's last token when the whole prompt is cached).
    pub fn place(&self, tokens: &[LlamaToken], limit: usize) -> Option<Placement> {
        let idle = || self.slots.iter().enumerate().filter(|(_, s)| !s.busy);
        let lru = idle().min_by_key(|(_, s)| s.last_used)?.0;
        if !self.reuse {
            return Some(Placement { slot: lru, keep: 0, copy_from: None });
        }
        let shared = |s: &Slot| common_prefix(&s.cached, tokens).min(limit);
        // The idle slot sharing the most (the least recently used among equals); when
        // none shares anything, the least recently used one.
        let (slot, keep) = idle()
            .map(|(i, s)| (i, shared(s)))
            .filter(|&(_, n)| n > 0)
            .max_by_key(|&(i, n)| (n, std::cmp::Reverse(self.slots[i].last_used)))
            .unwrap_or((lru, 0));
        let donor = self
            .slots
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != slot)
            .map(|(i, s)| (i, shared(s)))
            .filter(|&(_, n)| n >= keep + MIN_COPY_GAIN)
            .max_by_key(|&(_, n)| n);
        Some(Placement { slot, keep, copy_from: donor })
    }

    /// Mark `placement`'s slot busy with a call whose prompt starts with its first
    /// `placement.reused()` cached tokens (the engine has trimmed or copied the KV state).
    pub fn take(&mut self, placement: Placement, prompt: &[LlamaToken]) {
        self.clock += 1;
        let clock = self.clock;
        let reused = placement.reused();
        let slot = &mut self.slots[placement.slot];
        slot.cached.clear();
        slot.cached.extend_from_slice(&prompt[..reused]);
        slot.busy = true;
        slot.last_used = clock;
    }
}

/// Length of the longest common prefix of `a` and `b`.
pub fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().map(|&i| LlamaToken(i)).collect()
    }

    fn finish(slots: &mut Slots, index: usize, cached: &[i32]) {
        let slot = slots.get_mut(index);
        slot.cached = toks(cached);
        slot.busy = false;
    }

    #[test]
    fn prefers_the_idle_slot_sharing_the_longest_prefix() {
        let mut slots = Slots::new(3, true);
        let a = toks(&[1, 2, 3, 4]);
        let first = slots.place(&a, 3).unwrap();
        assert_eq!(first, Placement { slot: 0, keep: 0, copy_from: None });
        slots.take(first, &a);
        finish(&mut slots, 0, &[1, 2, 3, 4, 9]);
        // A prompt that extends the cached one keeps all of it.
        let b = toks(&[1, 2, 3, 4, 9, 7]);
        assert_eq!(slots.place(&b, 5).unwrap(), Placement { slot: 0, keep: 5, copy_from: None });
        // The same prompt again re-decodes at least from `limit`.
        assert_eq!(slots.place(&a, 3).unwrap().keep, 3);
        // Nothing shared: the least recently used slot (never used) takes it.
        let c = toks(&[8, 8]);
        assert_eq!(slots.place(&c, 1).unwrap(), Placement { slot: 1, keep: 0, copy_from: None });
    }

    #[test]
    fn copies_a_longer_prefix_from_a_busy_slot() {
        let mut slots = Slots::new(2, true);
        let long: Vec<i32> = (0..MIN_COPY_GAIN as i32 + 10).collect();
        let a = toks(&long);
        let p = slots.place(&a, a.len() - 1).unwrap();
        slots.take(p, &a);
        slots.get_mut(0).cached = a.clone(); // decoded so far, still busy
        let mut b = a.clone();
        b.push(LlamaToken(-1));
        let n = a.len();
        assert_eq!(slots.place(&b, n).unwrap(), Placement { slot: 1, keep: 0, copy_from: Some((0, n)) });
        assert_eq!(slots.place(&b, n).unwrap().reused(), n);
        // A prefix shorter than the copy's worth is decoded again instead.
        let short = toks(&long[..MIN_COPY_GAIN - 1]);
        assert_eq!(slots.place(&short, short.len()).unwrap().copy_from, None);
    }

    #[test]
    fn without_reuse_every_call_starts_empty_and_busy_slots_are_skipped() {
        let mut slots = Slots::new(2, false);
        let a = toks(&[1, 2, 3]);
        let p = slots.place(&a, 2).unwrap();
        slots.take(p, &a);
        assert!(slots.get(0).busy && slots.get(0).cached.is_empty());
        let q = slots.place(&a, 2).unwrap();
        assert_eq!(q, Placement { slot: 1, keep: 0, copy_from: None });
        slots.take(q, &a);
        assert_eq!(slots.busy(), 2);
        assert_eq!(slots.place(&a, 2), None);
        finish(&mut slots, 0, &[1, 2, 3]);
        assert_eq!(slots.place(&a, 2).unwrap(), Placement { slot: 0, keep: 0, copy_from: None });
    }

    #[test]
    fn common_prefix_counts_matching_tokens() {
        assert_eq!(common_prefix(&toks(&[1, 2, 3]), &toks(&[1, 2, 4])), 2);
        assert_eq!(common_prefix(&toks(&[]), &toks(&[1])), 0);
        assert_eq!(common_prefix(&toks(&[1, 2]), &toks(&[1, 2, 3])), 2);
    }
}
