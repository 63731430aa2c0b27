//! `POST /recheck/v1/verify`: answers the client already has, verified as `recheck
//! verify` verifies them (one record, or a list of them), each a stored `verify` run.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    response::{IntoResponse, Response},
};
use serde_json::Value;

use super::{ApiError, Server};
use crate::orchestrator::{verify, verify_row, GivenAnswer};

/// Records one request may carry: each is verified in turn within the deadline.
const MAX_RECORDS: usize = 100;

/// The handler: a record (`{"answer", "question"?, "contexts"?, "id"?}`) or a list of
/// them; answers the row (or list of rows) `recheck verify` writes. A record that
/// fails is an `error` row; a body that is not records is a 400.
pub(super) async fn records(State(server): State<Arc<Server>>, body: Bytes) -> Response {
    let Ok(permit) = server.limiter.clone().try_acquire_owned() else {
        return ApiError::busy(server.config.max_in_flight).into_response();
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return ApiError::invalid("body", format!("bad request body: {e}")).into_response(),
    };
    let (list, records) = match value {
        Value::Array(items) => (true, items),
        one => (false, vec![one]),
    };
    if records.len() > MAX_RECORDS {
        let message = format!("at most {MAX_RECORDS} records a request, got {}", records.len());
        return ApiError::invalid("body", message).into_response();
    }
    let mut given = Vec::with_capacity(records.len());
    for (i, record) in records.into_iter().enumerate() {
        match serde_path_to_error::deserialize::<_, GivenAnswer>(record) {
            Ok(g) => given.push(g),
            Err(e) => {
                let path = e.path().to_string();
                let at = match (list, path.as_str()) {
                    (true, ".") => format!("[{i}]"),
                    (true, p) => format!("[{i}].{p}"),
                    (false, ".") => "body".into(),
                    (false, p) => p.to_string(),
                };
                return ApiError::invalid(at, format!("not a record to verify: {}", e.inner())).into_response();
            }
        }
    }
    let (store, model, options) = (server.store.clone(), server.model.clone(), server.options.clone());
    // In its own task, so a client that goes away does not cut the runs short.
    let work = tokio::spawn(async move {
        let mut rows = Vec::with_capacity(given.len());
        for record in &given {
            rows.push(match verify(&store, model.clone(), record, &options).await {
                Ok(outcome) => verify_row(&serde_json::json!(outcome)),
                Err(e) => serde_json::json!({ "id": record.id, "error": e.to_string() }),
            });
        }
        drop(permit);
        rows
    });
    let deadline = server.config.deadline;
    match tokio::time::timeout(deadline, work).await {
        Err(_) => ApiError::deadline(deadline.as_secs_f64()).into_response(),
        Ok(Err(e)) => ApiError::internal(format!("verification stopped unexpectedly: {e}")).into_response(),
        Ok(Ok(mut rows)) if !list => axum::Json(rows.remove(0)).into_response(),
        Ok(Ok(rows)) => axum::Json(rows).into_response(),
    }
}
