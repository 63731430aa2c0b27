//! Routes, the key check, pass-through to the upstream, and the accept loop (hyper,
//! for header timeouts and graceful shutdown).

use std::{future::Future, sync::atomic::Ordering, sync::Arc};

use axum::{
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::{
    chat::{self, store_error, with_headers},
    reads,
    wire::{ChatCompletionRequest, ModelEntry, ModelList},
    ApiError, Server, ServerError,
};
use crate::trace::{run_kind, RunRecorder, RunStatus};

/// The routes, with the key check, body limit and body timeout.
pub fn router(server: Arc<Server>) -> Router {
    let protected = Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics))
        .route("/recheck/v1/runs", get(reads::runs))
        .route("/recheck/v1/export", get(reads::export))
        .route("/recheck/v1/verify", post(super::verify::records))
        .route_layer(middleware::from_fn_with_state(server.clone(), require_key));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .fallback(|| async { ApiError::not_found("no such route; see /v1/chat/completions") })
        .layer(DefaultBodyLimit::max(server.config.body_limit))
        .layer(middleware::from_fn_with_state(server.clone(), whole_body))
        .with_state(server)
}

/// Read the request's whole body before any route sees it: refused at once (413) when
/// its declared length is over the limit, and cut (408) when all of it has not come
/// within `--body-timeout`, however slowly it trickles in.
async fn whole_body(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    let limit = server.config.body_limit;
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::too_large(limit).into_response();
    }
    let (parts, body) = request.into_parts();
    let timeout = server.config.body_timeout;
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => ApiError::body_timeout(timeout.as_secs_f64()).into_response(),
        Ok(Err(e)) if e.to_string().contains("length limit") => ApiError::too_large(limit).into_response(),
        Ok(Err(e)) => ApiError::invalid("body", format!("could not read the request body: {e}")).into_response(),
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
    }
}

/// 401 unless the request carries the server's key (when it has one).
async fn require_key(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    if let Some(key) = &server.config.api_key {
        let sent = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        if !same(sent.as_bytes(), key.as_bytes()) {
            let started = std::time::Instant::now();
            let response = ApiError::unauthorized().into_response();
            server.metrics.request(401, "error", "verified", started.elapsed().as_secs_f64());
            return response;
        }
    }
    next.run(request).await
}

/// The token of an `Authorization: Bearer TOKEN` value; the scheme's name is matched
/// without regard to case (RFC 7235 section 2.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_start())
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn health(State(server): State<Arc<Server>>) -> Response {
    let stopping = server.stopping.load(Ordering::SeqCst);
    let failure = server.store.write_failure();
    let (status, word) = match (&failure, stopping) {
        (Some(_), _) => (StatusCode::SERVICE_UNAVAILABLE, "store_failed"),
        (None, true) => (StatusCode::SERVICE_UNAVAILABLE, "stopping"),
        (None, false) => (StatusCode::OK, "ok"),
    };
    let mut body = json!({
        "status": word,
        "model": server.model.info().spec,
        "in_flight": server.config.max_in_flight - server.limiter.available_permits(),
    });
    if let Some(why) = failure {
        body["reason"] = json!(format!("a write to the trace store failed: {why}"));
    }
    (status, axum::Json(body)).into_response()
}

async fn models(State(server): State<Arc<Server>>) -> axum::Json<ModelList> {
    let info = server.model.info();
    let mut ids = vec![info.spec.clone()];
    if let Some(up) = &server.upstream {
        ids.push(up.model.clone());
    }
    let data = ids
        .into_iter()
        .map(|id| ModelEntry { id, object: "model", created: server.started, owned_by: "recheck" })
        .collect();
    axum::Json(ModelList { object: "list", data })
}

async fn metrics(State(server): State<Arc<Server>>) -> Response {
    let mut response = server.metrics.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// Pass a request recheck cannot verify to the upstream as it is (the model name set
/// to the upstream's), and its reply back as it is; without an upstream, the served
/// model answers it unverified. Either way it is a stored run.
pub(super) async fn passthrough(
    server: &Arc<Server>,
    request: &ChatCompletionRequest,
    body: &Bytes,
    reason: &'static str,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Response, ApiError> {
    let Some(upstream) = &server.upstream else {
        return chat::answer_unverified(server, request, reason).await;
    };
    let mut forwarded: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid("body", format!("bad request body: {e}")))?;
    forwarded["model"] = json!(upstream.model);
    if let Some(map) = forwarded.as_object_mut() {
        map.remove("recheck");
    }
    let store = &server.store;
    let input = json!({ "passthrough": reason, "request": forwarded });
    let config = json!({ "upstream": upstream.base_url, "model": upstream.model });
    let run = store.create_run(run_kind::SERVE, input, config, None).await.map_err(store_error)?;
    let recorder = RunRecorder::new(store.clone(), run.id, 0);
    let url = format!("{}/chat/completions", upstream.base_url.trim_end_matches('/'));
    let mut call = server.http.post(url).json(&forwarded);
    if let Some(key) = &upstream.api_key {
        call = call.bearer_auth(key);
    }
    let reply = match call.send().await {
        Ok(r) => r,
        Err(e) => {
            let message = format!("the upstream failed (run {} is stored as failed): {e}", run.id);
            let _ = store.finish_run(run.id, RunStatus::Failed, None, Some(message.clone())).await;
            return Err(ApiError::upstream(message));
        }
    };
    let status = reply.status();
    let content_type = reply.headers().get(header::CONTENT_TYPE).cloned();
    let trace = run.id.to_string();
    if request.stream && status.is_success() {
        // Relayed as it comes, holding the permit; stored when it ends.
        let cap = upstream.max_reply_bytes;
        let body = super::relay::relay(server, run.id, recorder, status.as_u16(), permit, reply.bytes_stream(), cap);
        let mut response = Response::new(Body::from_stream(body));
        *response.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        if let Some(ct) = content_type {
            response.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        return Ok(with_headers(response, "skipped", Some(&trace)));
    }
    let bytes = match capped_body(reply, upstream.max_reply_bytes).await {
        Ok(b) => b,
        Err(e) => {
            let message = format!("{e} (run {} is stored as failed)", run.id);
            let _ = store.finish_run(run.id, RunStatus::Failed, None, Some(message.clone())).await;
            return Err(ApiError::upstream(message));
        }
    };
    let reply_json: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
    recorder
        .event("proxy", "passthrough", json!({ "status": status.as_u16(), "response": reply_json }))
        .await
        .map_err(store_error)?;
    let (run_status, error) = if status.is_success() {
        (RunStatus::Completed, None)
    } else {
        (RunStatus::Failed, Some(format!("the upstream answered {status}")))
    };
    store.finish_run(run.id, run_status, Some(reply_json), error).await.map_err(store_error)?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    Ok(with_headers(response, "skipped", Some(&trace)))
}

/// The whole body of `reply`, refused past `max` bytes (it is not read further).
async fn capped_body(mut reply: reqwest::Response, max: usize) -> Result<Bytes, String> {
    if reply.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("the upstream's reply is over --max-reply-bytes ({max} bytes)"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = reply.chunk().await.map_err(|e| format!("the upstream's reply broke off: {e}"))? {
        if body.len() + chunk.len() > max {
            return Err(format!("the upstream's reply is over --max-reply-bytes ({max} bytes)"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// Serve on `listener` until `shutdown` resolves; then stop accepting, let requests in
/// flight finish (up to the grace period), wait for their runs to be stored, and
/// flush the store.
pub async fn serve(
    listener: TcpListener,
    server: Arc<Server>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    server.config.check()?;
    let app = router(server.clone());
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(server.config.header_timeout).keep_alive(true);
    // A connection holds a permit while it is open: past `max_connections`, new ones
    // wait in the listen queue instead of each costing a task and a socket.
    let connections = Arc::new(tokio::sync::Semaphore::new(server.config.max_connections));
    let store_failed = server.store.write_failed();
    tokio::pin!(shutdown, store_failed);
    let failure = loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break None,
            },
            () = &mut shutdown => break None,
            why = &mut store_failed => break Some(why),
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, say: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!("connection ended: {e}");
                    }
                    drop(permit);
                });
            }
            () = &mut shutdown => break None,
            why = &mut store_failed => break Some(why),
        }
    };
    drop(listener);
    server.stopping.store(true, Ordering::SeqCst);
    let grace = server.config.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {grace:?}; closing them");
    }
    // Runs whose clients went away (and streams being relayed) still hold their
    // permits until they are stored.
    let all = u32::try_from(server.config.max_in_flight).unwrap_or(u32::MAX);
    let cut = match tokio::time::timeout(grace, server.limiter.acquire_many(all)).await {
        Ok(_) => 0,
        Err(_) => server.config.max_in_flight - server.limiter.available_permits(),
    };
    if let Some(why) = failure {
        return Err(ServerError::StoreFailed(why));
    }
    server.store.sync().await?;
    if cut > 0 {
        return Err(ServerError::RunsCut { cut, grace_secs: grace.as_secs_f64() });
    }
    Ok(())
}
