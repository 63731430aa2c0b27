//! Reading the store through the server: while `recheck serve` holds the store (sled
//! allows one process), `recheck traces list/show/export` read through these.

use std::sync::Arc;

use super::{chat::store_error, ApiError, Server};
use crate::trace::RunId;
use axum::{
    extract::{RawQuery, State},
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};

/// `GET /recheck/v1/runs[?items=true]`: the store's [`crate::trace::Listing`], as
/// `recheck traces list` shows it.
pub(super) async fn runs(State(server): State<Arc<Server>>, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let items = pairs(query.as_deref()).any(|(k, v)| k == "items" && v == "true");
    let store = server.store.clone();
    let listing = tokio::task::spawn_blocking(move || store.listing(items))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(store_error)?;
    Ok(axum::Json(listing).into_response())
}

/// `GET /recheck/v1/export[?run=ID&run=...]`: runs with their steps as JSONL, exactly
/// as `recheck traces export` writes them (all runs without `run`). IDs may be unique
/// prefixes.
pub(super) async fn export(State(server): State<Arc<Server>>, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let wanted: Vec<String> =
        pairs(query.as_deref()).filter(|(k, _)| *k == "run").map(|(_, v)| v.to_string()).collect();
    if let Some(bad) = wanted.iter().find(|w| w.is_empty() || !w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(ApiError::invalid("run", format!("{bad:?} is not a run id")));
    }
    let store = server.store.clone();
    let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let ids = wanted
            .iter()
            .map(|w| {
                store.resolve(w).map_err(|e| match e {
                    // The request names no one run: the caller must give more of the id.
                    crate::trace::TraceError::AmbiguousRun { .. } => ApiError::invalid("run", e.to_string()),
                    e => ApiError::not_found(e.to_string()),
                })
            })
            .collect::<Result<Vec<RunId>, _>>()?;
        let dir = tempfile::tempdir().map_err(|e| ApiError::internal(format!("export: {e}")))?;
        let file = dir.path().join("export.jsonl");
        store.export_jsonl(&file, &ids).map_err(store_error)?;
        std::fs::read(&file).map_err(|e| ApiError::internal(format!("export: {e}")))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(response)
}

/// `key=value` pairs of a query string (values here are ids and flags: no decoding needed).
fn pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query.unwrap_or("").split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, "")))
}
