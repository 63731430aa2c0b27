//! The `local` backend: a GGUF chat model running in-process through llama.cpp.
//!
//! The model loads once per process per file ([`LocalBackend::shared`]) and lives on a
//! dedicated worker thread that owns the llama.cpp context; async callers send jobs and
//! await replies, so inference never blocks the tokio runtime and calls are serialised.
//!
//! The engine needs the `local` cargo feature (it builds llama.cpp, which takes cmake
//! and libclang); the model cache in [`cache`] works without it.

#[cfg(feature = "local")]
mod backend;
pub mod cache;
#[cfg(feature = "local")]
mod engine;
#[cfg(feature = "local")]
mod template;

#[cfg(feature = "local")]
pub use backend::{llama_backend, LocalBackend};
#[cfg(feature = "local")]
pub use template::ChatTemplate;
