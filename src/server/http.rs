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
        .route_layer(middleware::from_fn_with_state(server.clone(), require_key));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .fallback(|| async { ApiError::not_found("no such route; see /v1/chat/completions") })
        .layer(DefaultBodyLimit::max(server.config.body_limit))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(server.config.body_timeout))
        .with_state(server)
}

/// 401 unless the request carries the server's key (when it has one).
async fn require_key(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    if let Some(key) = &server.config.api_key {
        let sent = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
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

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn health(State(server): State<Arc<Server>>) -> Response {
    let stopping = server.stopping.load(Ordering::SeqCst);
    let status = if stopping { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    let body = json!({
        "status": if stopping { "stopping" } else { "ok" },
        "model": server.model.info().spec,
        "in_flight": server.config.max_in_flight - server.limiter.available_permits(),
    });
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
    _permit: tokio::sync::OwnedSemaphorePermit,
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
        // Streamed as it comes: the run records that it was, not the events.
        let data = json!({ "status": status.as_u16(), "streamed": true });
        recorder.event("proxy", "passthrough", data).await.map_err(store_error)?;
        store.finish_run(run.id, RunStatus::Completed, None, None).await.map_err(store_error)?;
        let mut response = Response::new(Body::from_stream(reply.bytes_stream()));
        *response.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        if let Some(ct) = content_type {
            response.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        return Ok(with_headers(response, "skipped", Some(&trace)));
    }
    let bytes = match reply.bytes().await {
        Ok(b) => b,
        Err(e) => {
            let message = format!("the upstream's reply broke off (run {} is stored as failed): {e}", run.id);
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
    tokio::pin!(shutdown);
    loop {
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
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    server.stopping.store(true, Ordering::SeqCst);
    let grace = server.config.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {grace:?}; closing them");
    }
    // Runs whose clients went away still hold their permits until they are stored.
    let all = u32::try_from(server.config.max_in_flight).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, server.limiter.acquire_many(all)).await.is_err() {
        tracing::warn!("runs still in flight after {grace:?}");
    }
    server.store.sync().await?;
    Ok(())
}
