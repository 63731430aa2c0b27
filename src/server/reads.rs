//! Reading the store through the server: while `recheck serve` holds the store (sled
//! allows one process), `recheck traces list/show/export` read through these.

use std::sync::Arc;

use axum::{
    extract::{RawQuery, State},
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::{chat::store_error, ApiError, Server};
use crate::trace::{RunId, RunRecord};

/// One row of `GET /recheck/v1/runs`: the same shape as `recheck traces list --json`.
#[derive(Debug, Serialize)]
struct Row {
    run: RunRecord,
    steps: usize,
}

/// `GET /recheck/v1/runs[?items=true]`: every run (experiments' item runs only with
/// `items`), oldest first, with step counts; `hidden` counts the item runs left out.
pub(super) async fn runs(State(server): State<Arc<Server>>, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let items = pairs(query.as_deref()).any(|(k, v)| k == "items" && v == "true");
    let store = server.store.clone();
    let rows = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let (runs, unreadable) = store.readable_runs().map_err(store_error)?;
        let total = runs.len();
        let mut rows = Vec::new();
        for run in runs.into_iter().filter(|r| items || r.group.is_none()) {
            let steps = store.step_count(run.id).map_err(store_error)?;
            rows.push(Row { run, steps });
        }
        let unreadable: Vec<String> = unreadable.iter().map(ToString::to_string).collect();
        let hidden = total - rows.len();
        Ok(serde_json::json!({ "runs": rows, "unreadable": unreadable, "hidden": hidden }))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(axum::Json(rows).into_response())
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
            .map(|w| store.resolve(w).map_err(|e| ApiError::not_found(e.to_string())))
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
