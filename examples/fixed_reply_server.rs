//! A loopback OpenAI-compatible server with one fixed reply and a fixed latency, for
//! benchmarks only (`scripts/bench-peers.sh` runs it in its own process so its CPU is
//! not counted against the client). Not a model and not a backend users are offered.
//!
//! `cargo run --release --example fixed_reply_server -- --port 0 --latency-ms 50`
//! prints `listening on http://127.0.0.1:PORT/v1` and serves:
//! - `POST .../chat/completions`: after the latency, a chat completion whose content is
//!   the reply (default: DSPy's field format with critic-shaped JSON as the answer, so
//!   DSPy's ChatAdapter and recheck's critic both parse it on the first try);
//! - `GET /stats`: `{"requests": N}`, chat requests served so far.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

// DSPy's ChatAdapter reads `[[ ## field ## ]]` sections: `answer` for Predict, and
// `discussion` and `advice` (a JSON object) for the feedback step inside Refine.
const DEFAULT_REPLY: &str = "[[ ## answer ## ]]\n{\"verdict\": \"incorrect\", \"earliest_wrong_step\": 0, \
\"problems\": [\"check the first step\"], \"confidence\": 0.5}\n\n[[ ## discussion ## ]]\nThe first step is wrong.\n\n\
[[ ## advice ## ]]\n{\"predict\": \"Check the first step.\"}\n\n[[ ## completed ## ]]";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let port: u16 = arg("--port").map(|p| p.parse().expect("--port N")).unwrap_or(0);
    let latency = Duration::from_millis(arg("--latency-ms").map(|l| l.parse().expect("--latency-ms N")).unwrap_or(0));
    let reply = arg("--reply").unwrap_or_else(|| DEFAULT_REPLY.to_string());
    let body = serde_json::json!({
        "id": "chatcmpl-fixed", "object": "chat.completion", "created": 1, "model": "fixed",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop", "logprobs": null}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 30, "total_tokens": 130}
    })
    .to_string();
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    println!("listening on http://{}/v1", listener.local_addr().expect("addr"));
    let served = Arc::new(AtomicU64::new(0));
    let body: Arc<str> = body.into();
    loop {
        let Ok((socket, _)) = listener.accept().await else { continue };
        let (body, served) = (body.clone(), served.clone());
        tokio::spawn(async move {
            let _ = serve(socket, &body, latency, &served).await;
        });
    }
}

/// One keep-alive connection: read a request, answer it, repeat.
async fn serve(socket: TcpStream, body: &str, latency: Duration, served: &AtomicU64) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut skip = vec![0u8; length];
        reader.read_exact(&mut skip).await?;
        let payload = if request_line.starts_with("GET /stats") {
            format!("{{\"requests\": {}}}", served.load(Ordering::Relaxed))
        } else {
            tokio::time::sleep(latency).await;
            served.fetch_add(1, Ordering::Relaxed);
            body.to_string()
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: keep-alive\r\n\r\n",
            payload.len()
        );
        write.write_all(head.as_bytes()).await?;
        write.write_all(payload.as_bytes()).await?;
    }
}
