//! The `local` backend: a GGUF chat model running in-process through llama.cpp.
//!
//! The model loads once per process per file and decoding mode
//! ([`LocalBackend::shared`]) and lives on a dedicated worker thread that owns the
//! llama.cpp context; async callers send jobs and await replies, so inference never
//! blocks the tokio runtime. The worker decodes up to `sequences` calls together in one
//! batch and reuses cached prompt prefixes ([`Decoding`](crate::llm::Decoding)); more
//! calls queue.
//!
//! The engine needs the `local` cargo feature (it builds llama.cpp, which takes cmake
//! and libclang); the model cache in [`cache`] works without it.

#[cfg(feature = "local")]
mod backend;
pub mod cache;
#[cfg(feature = "local")]
mod engine;
#[cfg(feature = "local")]
mod slots;
#[cfg(feature = "local")]
mod template;
#[cfg(feature = "local")]
mod work;

#[cfg(feature = "local")]
pub use backend::{llama_backend, LocalBackend};
#[cfg(feature = "local")]
pub use engine::DecodeStats;
#[cfg(feature = "local")]
pub use template::ChatTemplate;

use crate::llm::Decoding;

/// Context window of each call: every sequence gets all of it.
pub const CONTEXT_TOKENS: u32 = 4096;

/// The decoding mode a model gets unless told otherwise: prefix reuse on, and twice as
/// many sequences as the machine has cores, from 2 to 8. Decoding is compute-bound, so
/// sequences beyond that add KV memory (about 94 MB each for SmolLM2-135M at 4,096
/// tokens) without adding throughput; below it, concurrent calls would queue.
pub fn default_decoding() -> Decoding {
    Decoding { prefix_reuse: true, sequences: (2 * threads()).clamp(2, 8) as u32 }
}

/// Threads llama.cpp decodes on: one a core (2 when the count cannot be read).
pub fn threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}
