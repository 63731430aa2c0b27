//! Test fixtures: a loopback OpenAI-compatible server that plays scripted replies
//! and faults. It is a test double only; it never stands in for a model's behaviour.
//! [`datasets`] writes our own items in the shared datasets' formats.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod datasets;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// One scripted reply.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this JSON body.
    Json(Value),
    /// Any status, raw body and extra headers.
    Raw { status: u16, body: String, headers: Vec<(String, String)> },
    /// Wait, then send the inner reply.
    Delay(Duration, Box<Reply>),
    /// Declare a longer Content-Length than is sent, then close.
    Truncated(String),
    /// Never answer (until the server shuts down).
    Hang,
    /// Send the headers and this start of the body, then stall (for an hour).
    Stall(String),
    /// 200 with these bytes as the body (not necessarily UTF-8).
    Bytes(Vec<u8>),
    /// A server-sent event stream that never ends: one chunk event every 5 ms until
    /// the client goes away.
    Endless,
}

impl Reply {
    /// A normal chat completion in OpenAI's exact shape.
    pub fn chat(text: &str) -> Self {
        Reply::Json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "scripted",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": null}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        }))
    }

    /// A chat completion that reports `prompt_tokens` (what a prefill check reads).
    pub fn chat_with_prompt_tokens(text: &str, prompt_tokens: u32) -> Self {
        let mut reply = Self::chat(text);
        if let Reply::Json(body) = &mut reply {
            body["usage"] =
                json!({"prompt_tokens": prompt_tokens, "completion_tokens": 1, "total_tokens": prompt_tokens + 1});
        }
        reply
    }

    /// The replies of a server that continues a prefilled turn to the backend's three
    /// check calls (fresh, continued, closed), as vLLM's prompt token counts would be.
    pub fn prefill_check_passed() -> Vec<Self> {
        vec![
            Self::chat_with_prompt_tokens("Red", 34),
            Self::chat_with_prompt_tokens(" sky", 35),
            Self::chat_with_prompt_tokens("Blue", 41),
        ]
    }

    /// An HTTP error status with a body.
    pub fn status(status: u16, body: &str) -> Self {
        Reply::Raw { status, body: body.to_string(), headers: vec![] }
    }
}

/// A running scripted server. Replies are played in order; the last one repeats.
pub struct MockServer {
    /// Base URL, ending in `/v1`.
    pub url: String,
    /// Bodies of the requests received, in order.
    pub requests: Arc<Mutex<Vec<Value>>>,
    /// Highest number of requests in flight at once.
    pub max_in_flight: Arc<AtomicUsize>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl MockServer {
    /// Start on 127.0.0.1 on a free port, on a thread and runtime of its own.
    pub fn start(script: Vec<Reply>) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let (reqs, maxf) = (requests.clone(), max_in_flight.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let script = Arc::new(script);
                let counter = Arc::new(AtomicUsize::new(0));
                let in_flight = Arc::new(AtomicUsize::new(0));
                let serve = async {
                    loop {
                        let Ok((mut sock, _)) = listener.accept().await else { continue };
                        let (script, counter, reqs, in_flight, maxf) =
                            (script.clone(), counter.clone(), reqs.clone(), in_flight.clone(), maxf.clone());
                        tokio::spawn(async move {
                            let Some(body) = read_request(&mut sock).await else { return };
                            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            maxf.fetch_max(now, Ordering::SeqCst);
                            reqs.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                            let n = counter.fetch_add(1, Ordering::SeqCst);
                            let mut reply =
                                script.get(n).or(script.last()).cloned().unwrap_or(Reply::status(500, "empty script"));
                            // A request stops counting as in flight once its reply is
                            // ready, before the client can read it: counting it until
                            // the bytes were sent let the client's next call overlap.
                            while let Reply::Delay(d, inner) = reply {
                                tokio::time::sleep(d).await;
                                reply = *inner;
                            }
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            send(&mut sock, reply).await;
                        });
                    }
                };
                tokio::select! { _ = serve => {}, _ = shutdown_rx => {} }
            });
        });
        let addr = addr_rx.recv().unwrap();
        MockServer { url: format!("http://{addr}/v1"), requests, max_in_flight, _shutdown: shutdown_tx }
    }

    /// How many requests arrived.
    pub fn hits(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let len: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    while buf.len() < header_end + len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[header_end..header_end + len].to_vec())
}

fn send(
    sock: &mut tokio::net::TcpStream,
    reply: Reply,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
    Box::pin(async move {
        let (status, body, headers, declared) = match reply {
            Reply::Bytes(bytes) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    bytes.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&bytes).await;
                let _ = sock.flush().await;
                let _ = sock.shutdown().await;
                return;
            }
            Reply::Endless => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let event = "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"more \"}}]}\n\n";
                while sock.write_all(event.as_bytes()).await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                return;
            }
            Reply::Json(v) => (200, v.to_string(), vec![], None),
            Reply::Raw { status, body, headers } => (status, body, headers, None),
            Reply::Delay(d, inner) => {
                tokio::time::sleep(d).await;
                return send(sock, *inner).await;
            }
            Reply::Truncated(body) => (200, body.clone(), vec![], Some(body.len() + 500)),
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Reply::Stall(start) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    start.len() + 100
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(start.as_bytes()).await;
                let _ = sock.flush().await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
        };
        let mut head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
            declared.unwrap_or(body.len())
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let _ = sock.write_all(head.as_bytes()).await;
        let _ = sock.write_all(body.as_bytes()).await;
        let _ = sock.flush().await;
        let _ = sock.shutdown().await;
    })
}

/// A fresh temporary directory for a test's home.
pub fn temp_home() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The data of a run's events named `name`, in order.
pub fn events<'a>(steps: &'a [recheck::trace::StepRecord], name: &str) -> Vec<&'a Value> {
    steps
        .iter()
        .filter_map(|s| match &s.payload {
            recheck::trace::StepPayload::Event { name: n, data } if n == name => Some(data),
            _ => None,
        })
        .collect()
}

/// A friction spec of one arithmetic item of our own, in `dir`; returns the spec file.
pub fn one_item_spec(dir: &std::path::Path) -> std::path::PathBuf {
    friction_spec(dir, "{\"question\": \"What is 2 * 3?\", \"answer\": \"6\"}\n", 1)
}

/// A friction spec of `rounds` answers an item over `items` (JSONL of questions with
/// numeric answers), written with it in `dir`; returns the spec file.
pub fn friction_spec(dir: &std::path::Path, items: &str, rounds: u32) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("items.jsonl"), items).unwrap();
    let spec = dir.join("f.toml");
    std::fs::write(
        &spec,
        format!("name = \"f\"\nprotocol = \"friction\"\nrounds = {rounds}\n[[datasets]]\nloader = \"jsonl\"\npath = \"./items.jsonl\"\nanswer = \"number\"\n"),
    )
    .unwrap();
    spec
}
