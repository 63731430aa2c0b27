//! Retry policy for HTTP model calls: exponential backoff with full jitter on
//! connect errors, timeouts, 429 and 5xx, honouring `Retry-After`; never on other 4xx.

use std::{future::Future, pin::Pin, time::Duration};

use async_openai::{error::OpenAIError, middleware::HttpRequestFactory};
use rand::Rng;
use reqwest::Response;

/// How HTTP model calls are timed out and retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Backoff before the first retry; doubles each retry.
    pub base_delay: Duration,
    /// Cap on any single wait, `Retry-After` included.
    pub max_delay: Duration,
    /// Timeout of one attempt, body included.
    pub timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(120),
        }
    }
}

impl RetryConfig {
    /// The wait before retry number `attempt + 1` when the server gives no hint: full
    /// jitter, uniform in [0, base * 2^attempt] capped at `max_delay`, so concurrent
    /// callers spread out.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.base_delay.saturating_mul(2u32.saturating_pow(attempt));
        let ceiling_ms = ceiling.min(self.max_delay).as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=ceiling_ms.max(1)))
    }
}

/// Retries of HTTP model calls made by this process (for `/metrics`).
static RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// HTTP model calls this process retried so far, over every backend.
pub fn retries_total() -> u64 {
    RETRIES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Count one retry.
pub(crate) fn count_retry() {
    RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A tower retry policy; one clone per request, so the attempt count is per call.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    config: RetryConfig,
    attempt: u32,
}

impl RetryPolicy {
    pub(crate) fn new(config: RetryConfig) -> Self {
        Self { config, attempt: 0 }
    }

    /// The wait before the next retry, or `None` when this result must not be retried.
    fn delay_for(&self, result: &Result<Response, OpenAIError>) -> Option<Duration> {
        let server_hint = match result {
            Ok(resp) => {
                let status = resp.status();
                if status.as_u16() != 429 && !status.is_server_error() {
                    return None;
                }
                retry_after(resp.headers())
            }
            Err(OpenAIError::Reqwest(e)) if e.is_connect() || e.is_timeout() => None,
            Err(_) => return None,
        };
        let delay = server_hint.unwrap_or_else(|| self.config.backoff(self.attempt));
        Some(delay.min(self.config.max_delay))
    }
}

/// Parse `retry-after-ms` (OpenAI) or `Retry-After` in seconds. HTTP dates fall back to backoff.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0));
    }
    let secs = get("retry-after")?.parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

impl tower::retry::Policy<HttpRequestFactory, Response, OpenAIError> for RetryPolicy {
    type Future = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

    fn retry(
        &mut self,
        _request: &mut HttpRequestFactory,
        result: &mut Result<Response, OpenAIError>,
    ) -> Option<Self::Future> {
        if self.attempt >= self.config.max_retries {
            return None;
        }
        let delay = self.delay_for(result)?;
        self.attempt += 1;
        count_retry();
        tracing::debug!(attempt = self.attempt, delay_ms = delay.as_millis() as u64, "retrying model call");
        Some(Box::pin(tokio::time::sleep(delay)))
    }

    fn clone_request(&mut self, request: &HttpRequestFactory) -> Option<HttpRequestFactory> {
        Some(request.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn retry_after_prefers_milliseconds_header() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
    }

    #[test]
    fn retry_after_ignores_dates_and_garbage() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("-3"));
        assert_eq!(retry_after(&h), None);
    }
}
