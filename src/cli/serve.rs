//! `recheck serve`: the OpenAI-compatible verifying proxy.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use clap::Args;

use recheck::{
    home::{serve_file, Home, ServeFile},
    llm::ModelSpec,
    server::{ServeConfig, Server, ServerError, Upstream},
};

/// Arguments of `recheck serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The model that answers: `local` (the embedded model, the default) or
    /// `openai:MODEL` on the server at --base-url.
    #[arg(long, short, default_value = "local", value_name = "SPEC")]
    pub model: String,

    /// Address to listen on. Anything but loopback needs --api-key-env.
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Name of the environment variable holding the key clients must send
    /// (`Authorization: Bearer KEY`). Without it only loopback clients can reach the
    /// server, and none needs a key.
    #[arg(long, value_name = "NAME")]
    pub api_key_env: Option<String>,

    /// Name of the environment variable holding the upstream server's key.
    #[arg(long, default_value = "OPENAI_API_KEY", value_name = "NAME")]
    pub upstream_key_env: String,

    /// Directory of indexes clients may name per request (`"recheck": {"index": NAME}`).
    /// Default: the home's `indexes/`.
    #[arg(long, value_name = "DIR")]
    pub index_root: Option<PathBuf>,

    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub body_limit: usize,

    /// Seconds to receive a request's headers; also how long an idle kept-alive
    /// connection stays open.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub header_timeout: f64,

    /// Seconds to receive a request's whole body (a total, however slowly it comes);
    /// a body declared larger than --body-limit is refused at once with 413.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub body_timeout: f64,

    /// Connections open at once, 1 to 65536; more wait in the listen queue until one closes.
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = super::in_flight())]
    pub max_connections: usize,

    /// Chat-completion requests answered at once, 1 to 65536; more get 429 with Retry-After.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = super::in_flight())]
    pub max_in_flight: usize,

    /// Seconds a request may take: half for the loop, the rest for verification;
    /// past it the client gets 504 and the run is still stored.
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    pub deadline: f64,

    /// Seconds requests in flight get to finish on SIGTERM or Ctrl-C.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub shutdown_grace: f64,

    /// Strategy, agents, corpus and verification: the defaults of every request.
    #[command(flatten)]
    pub run: super::ask::RunArgs,

    /// The upstream server: base URL, timeouts, retries.
    #[command(flatten)]
    pub upstream: super::models::Connection,

    /// OpenTelemetry export of every request's run.
    #[command(flatten)]
    pub otlp: super::otlp::OtlpArgs,

    /// Print `{"url": ..., "pid": ...}` on standard output once listening.
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn run(home: &Home, mut args: ServeArgs) -> anyhow::Result<()> {
    let api_key = match &args.api_key_env {
        None => None,
        Some(name) => match std::env::var(name) {
            Ok(k) if !k.trim().is_empty() => Some(k),
            _ => super::usage!("--api-key-env {name}: the environment variable {name} is not set or empty"),
        },
    };
    let config = ServeConfig {
        listen: args.listen,
        api_key,
        body_limit: args.body_limit,
        header_timeout: super::seconds("--header-timeout", args.header_timeout)?,
        body_timeout: super::seconds("--body-timeout", args.body_timeout)?,
        max_connections: args.max_connections,
        max_in_flight: args.max_in_flight,
        deadline: super::seconds("--deadline", args.deadline)?,
        shutdown_grace: super::seconds("--shutdown-grace", args.shutdown_grace)?,
        index_root: Some(args.index_root.clone().unwrap_or_else(|| home.indexes_dir())),
        retrieval: args.run.retrieval.choice()?,
    };
    if let Err(e) = config.check() {
        if matches!(e, ServerError::KeyRequired { .. }) {
            super::usage!("{e}; pass --api-key-env NAME, or listen on 127.0.0.1");
        }
        super::usage!("{e}");
    }
    // Each request in flight may have a call to the upstream in flight.
    args.upstream.concurrency = Some(config.max_in_flight.max(16));
    let key_env = &args.upstream_key_env;
    let options = args.run.options(|spec| args.upstream.open(home, spec, key_env))?;
    let spec: ModelSpec = args.model.parse()?;
    let upstream = match &spec {
        ModelSpec::OpenAi { model } => {
            let backend = args.upstream.backend_options(home, key_env)?;
            backend.base_url.clone().map(|base_url| Upstream {
                base_url,
                api_key: backend.api_key,
                model: model.clone(),
                max_reply_bytes: args.upstream.max_reply_bytes,
            })
        }
        _ => None,
    };
    let model = args.upstream.open(home, &args.model, key_env)?;
    recheck::orchestrator::check_judge(&options, model.as_ref()).map_err(super::flagged)?;
    let store = super::open_store(home)?;
    let exporter = args.otlp.live(&store)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| recheck::Error::Server(ServerError::Bind { addr: config.listen, source }))?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let announce = ServeFile { url: url.clone(), pid: std::process::id(), api_key_env: args.api_key_env.clone() };
    let file = serve_file(home);
    std::fs::write(&file, serde_json::to_vec(&announce)?)?;
    if args.json {
        super::print_json(&serde_json::json!({ "url": url, "pid": announce.pid }))?;
    }
    eprintln!(
        "recheck serve: {} on {url}/v1 (strategy {}, {}); Ctrl-C or SIGTERM stops it",
        model.info().spec,
        options.loop_options.strategy,
        if config.api_key.is_some() { "key required" } else { "loopback, no key" }
    );
    let grace = config.shutdown_grace;
    let server = Arc::new(Server::new(store, model, options, config, upstream));
    let result = recheck::server::serve(listener, server, stop_signal()).await;
    let _ = std::fs::remove_file(&file);
    super::otlp::finish(exporter, Some(grace));
    match &result {
        Ok(()) => eprintln!("recheck serve: stopped; every run is stored"),
        Err(ServerError::RunsCut { cut, .. }) => eprintln!(
            "recheck serve: stopped; {cut} runs in flight were cut at the shutdown grace: they are stored as far as they got and show as incomplete"
        ),
        Err(_) => eprintln!("recheck serve: stopped with an error; runs stored before it are kept"),
    }
    Ok(result?)
}

/// SIGTERM or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
