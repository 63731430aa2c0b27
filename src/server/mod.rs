//! `recheck serve`: an OpenAI-compatible proxy that answers every chat completion
//! inside the verify-and-revise loop and stores it as a run.
//!
//! Routes:
//! - `POST /v1/chat/completions`: verified answers, streamed or not, with a `recheck`
//!   object and the `x-recheck-verified` / `x-recheck-trace-id` headers; requests recheck
//!   cannot verify (tools, `n > 1`, non-text content, a structured response format, a
//!   conversation that does not end with the user) are passed through unverified and
//!   marked `x-recheck-verified: skipped`.
//! - `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus text).
//! - `GET /recheck/v1/runs` and `GET /recheck/v1/export?run=ID`: the store's runs, so
//!   `recheck traces` can read while this process holds the store.
//!
//! Every route but `/health` needs the API key when one is set; a server bound beyond
//! loopback must have one ([`ServeConfig::check`]).
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> recheck::Result<()> {
//! use std::sync::Arc;
//! use recheck::server::{serve, ServeConfig, Server};
//! let store = recheck::TraceStore::open("traces")?;
//! let model = recheck::open_model(&"local".parse()?, &Default::default())?;
//! let config = ServeConfig::default();
//! let server = Server::new(store, model, recheck::AskOptions::builtin()?, config.clone(), None);
//! let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| recheck::Error::Server(
//!     recheck::server::ServerError::Bind { addr: config.listen, source: e }))?;
//! serve(listener, Arc::new(server), async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod chat;
mod error;
mod http;
mod metrics;
mod options;
mod reads;
mod relay;
mod verify;
mod wire;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use tokio::sync::Semaphore;

pub use error::{ApiError, ServerError};
pub use http::{router, serve};
pub use metrics::Metrics;
pub use options::{Indexes, RecheckOptions};
pub use wire::{ChatCompletion, ChatCompletionRequest, RecheckReport};

use crate::{llm::ChatModel, trace::TraceStore, AskOptions};

/// How the server listens and what it allows.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The key clients must send (`Authorization: Bearer KEY`); `None` = no key.
    pub api_key: Option<String>,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Time to receive a request's headers; also how long a kept-alive connection may
    /// sit idle between requests.
    pub header_timeout: Duration,
    /// Time to receive a request's whole body, however it trickles in.
    pub body_timeout: Duration,
    /// Connections open at once; more wait in the listen queue.
    pub max_connections: usize,
    /// Chat-completion requests answered at once; more get 429 with `Retry-After`.
    pub max_in_flight: usize,
    /// The most a request may take. Half of it is the loop's time budget (no new
    /// revision starts after it); past all of it the client gets 504 and the run is
    /// still stored when it ends.
    pub deadline: Duration,
    /// On shutdown, how long requests in flight may take to finish.
    pub shutdown_grace: Duration,
    /// Directory whose subdirectories are the indexes clients may name (`recheck.index`).
    pub index_root: Option<PathBuf>,
    /// How those indexes are searched unless a request says (`recheck.retrieval`).
    pub retrieval: crate::embed::RetrievalChoice,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            api_key: None,
            body_limit: 1 << 20,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_in_flight: 64,
            deadline: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
            index_root: None,
            retrieval: Default::default(),
        }
    }
}

impl ServeConfig {
    /// Refuse settings that would be unsafe or useless: an address beyond loopback
    /// without a key, an empty key, zero limits.
    pub fn check(&self) -> Result<(), ServerError> {
        if !self.listen.ip().is_loopback() && self.api_key.is_none() {
            return Err(ServerError::KeyRequired { addr: self.listen });
        }
        if self.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return Err(ServerError::Config("the API key is empty".into()));
        }
        if self.max_in_flight == 0 || self.body_limit == 0 || self.max_connections == 0 {
            return Err(ServerError::Config(
                "requests in flight, connections and the body limit must be at least 1".into(),
            ));
        }
        if self.max_in_flight.max(self.max_connections) > Semaphore::MAX_PERMITS {
            return Err(ServerError::Config(format!(
                "requests in flight and connections must be at most {}, got {} and {}",
                Semaphore::MAX_PERMITS,
                self.max_in_flight,
                self.max_connections
            )));
        }
        if self.deadline.is_zero() || self.header_timeout.is_zero() || self.body_timeout.is_zero() {
            return Err(ServerError::Config("timeouts and the deadline must be longer than 0".into()));
        }
        Ok(())
    }
}

/// The OpenAI-compatible server requests that cannot be verified are passed to as they are.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Its base URL (`https://api.openai.com/v1`).
    pub base_url: String,
    /// Its API key.
    pub api_key: Option<String>,
    /// The model name sent to it.
    pub model: String,
    /// Largest reply relayed and stored, streamed or not (`--max-reply-bytes`): a
    /// larger one is a 502, a longer stream is cut there.
    pub max_reply_bytes: usize,
}

/// What every request shares: the store, the model, the default options.
pub struct Server {
    store: TraceStore,
    model: Arc<dyn ChatModel>,
    options: AskOptions,
    indexes: Indexes,
    upstream: Option<Upstream>,
    http: reqwest::Client,
    metrics: Metrics,
    limiter: Arc<Semaphore>,
    config: ServeConfig,
    started: i64,
    stopping: AtomicBool,
}

impl Server {
    /// A server answering with `model` under `options` (the defaults a request's
    /// `recheck` object overrides), storing runs in `store`. `upstream` is where
    /// requests that cannot be verified go; `None` answers them with `model`, unverified.
    pub fn new(
        store: TraceStore,
        model: Arc<dyn ChatModel>,
        mut options: AskOptions,
        config: ServeConfig,
        upstream: Option<Upstream>,
    ) -> Self {
        options.run_kind = crate::trace::run_kind::SERVE;
        Self {
            store,
            model,
            options,
            indexes: Indexes::new(config.index_root.clone(), config.retrieval.clone()),
            upstream,
            // Pass-through calls get the same deadline as verified ones.
            http: reqwest::Client::builder().timeout(config.deadline).build().unwrap_or_default(),
            metrics: Metrics::new(),
            limiter: Arc::new(Semaphore::new(config.max_in_flight)),
            started: chrono::Utc::now().timestamp(),
            stopping: AtomicBool::new(false),
            config,
        }
    }

    /// The store runs are written to.
    pub fn store(&self) -> &TraceStore {
        &self.store
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
