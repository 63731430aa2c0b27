//! Errors: the OpenAI-shaped error a client receives, and the server's own error.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// An error answered to a client, in OpenAI's shape:
/// `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault (`recheck.rounds`), when one is.
    pub param: Option<String>,
    /// A short machine-readable code (`rate_limit_exceeded`, `upstream_error`, ...).
    pub code: Option<&'static str>,
    /// Seconds to wait before retrying (sent as `Retry-After`).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'a str>,
    code: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), param: None, code: None, retry_after: None }
    }

    /// 400: the request is wrong; `param` names the field.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self { param: Some(param.into()), ..Self::new(StatusCode::BAD_REQUEST, message) }
    }

    /// 401: no key, or the wrong one.
    pub fn unauthorized() -> Self {
        Self {
            code: Some("invalid_api_key"),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong API key: send `Authorization: Bearer KEY` with the key this server was started with",
            )
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over this server's limit of {limit} bytes"),
        )
    }

    /// 408: the body did not arrive in time.
    pub fn body_timeout(secs: f64) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within this server's {secs} s (--body-timeout)"),
        )
    }

    /// 429: too many requests in flight.
    pub fn busy(in_flight: usize) -> Self {
        Self {
            code: Some("rate_limit_exceeded"),
            retry_after: Some(1),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("this server already has {in_flight} requests in flight; retry shortly"),
            )
        }
    }

    /// 502: the upstream model failed after retries.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self { code: Some("upstream_error"), ..Self::new(StatusCode::BAD_GATEWAY, message) }
    }

    /// 503: shutting down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { retry_after: Some(1), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message) }
    }

    /// 504: the request's deadline passed.
    pub fn deadline(secs: f64) -> Self {
        Self {
            code: Some("deadline_exceeded"),
            ..Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("no answer within this server's deadline of {secs} s; the run is stored when it ends"),
            )
        }
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// OpenAI's `type` for this status.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            400 | 404 | 408 | 413 => "invalid_request_error",
            401 => "authentication_error",
            429 => "rate_limit_error",
            500..=599 => "server_error",
            _ => "api_error",
        }
    }

    /// The JSON body, as bytes (also the payload of a streamed `error` event).
    pub fn body(&self) -> String {
        let body = Body {
            error: Inner { message: &self.message, kind: self.kind(), param: self.param.as_deref(), code: self.code },
        };
        serde_json::to_string(&body).unwrap_or_else(|_| String::from("{\"error\":{\"message\":\"error\"}}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A non-loopback address without an API key.
    #[error("refusing to listen on {addr} without an API key: anyone who can reach it could spend the upstream model's quota and read stored runs")]
    KeyRequired {
        /// The address asked for.
        addr: std::net::SocketAddr,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A setting is out of range.
    #[error("{0}")]
    Config(String),
    /// The trace store failed.
    #[error(transparent)]
    Trace(#[from] crate::trace::TraceError),
    /// A write to the trace store failed while serving: the server stopped so that a
    /// supervisor restarts it on a store it can write.
    #[error("stopped because the trace store failed: {0}")]
    StoreFailed(String),
    /// Runs were still in flight when the shutdown grace ran out; they are stored as
    /// far as they got and show as `incomplete` when the store is next opened.
    #[error("{cut} runs were still in flight after the shutdown grace of {grace_secs} s and were cut")]
    RunsCut {
        /// How many.
        cut: usize,
        /// The grace period.
        grace_secs: f64,
    },
}
