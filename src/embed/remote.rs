//! An OpenAI-compatible `/v1/embeddings` endpoint as an [`Embedder`] (OpenAI, vLLM,
//! llama.cpp's server with `--embeddings`). Vectors are normalised here: not every
//! server returns unit vectors.

use serde::Deserialize;

use crate::corpus::{CorpusError, Embedder, EmbedderIdentity};

use super::EmbedError;

/// Texts sent in one request.
const BATCH: usize = 64;

/// The endpoint's client.
#[derive(Debug)]
pub struct RemoteEmbedder {
    url: String,
    model: String,
    key: Option<String>,
    identity: EmbedderIdentity,
}

#[derive(Deserialize)]
struct Reply {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vec<f32>,
}

impl RemoteEmbedder {
    /// `model` at the server `base_url` (`http://host:port/v1`), asked once for the
    /// vector dimension.
    pub fn connect(base_url: &str, model: &str, key: Option<String>) -> Result<Self, EmbedError> {
        let url = format!("{}/embeddings", base_url.trim_end_matches('/'));
        let mut this = Self {
            url,
            model: model.to_string(),
            key,
            identity: EmbedderIdentity {
                spec: format!("openai:{model}"),
                model: model.to_string(),
                digest: base_url.trim_end_matches('/').to_string(),
                dim: 0,
            },
        };
        let probe = this.request(&["dimension probe"]).map_err(EmbedError::Remote)?;
        this.identity.dim = probe.first().map(Vec::len).unwrap_or(0);
        if this.identity.dim == 0 {
            return Err(EmbedError::Remote(format!("{} returned an empty vector", this.url)));
        }
        Ok(this)
    }

    /// One request, on a thread of its own with its own runtime: `embed` is called from
    /// synchronous code that may itself run inside an async runtime.
    fn request(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let body = serde_json::to_vec(&serde_json::json!({ "model": self.model, "input": texts }))
            .map_err(|e| format!("cannot encode the request: {e}"))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start a runtime: {e}"))?;
                runtime.block_on(async {
                    let client = reqwest::Client::builder()
                        .connect_timeout(std::time::Duration::from_secs(10))
                        .timeout(std::time::Duration::from_secs(120))
                        .build()
                        .map_err(|e| e.to_string())?;
                    let mut request =
                        client.post(&self.url).header("content-type", "application/json").body(body.clone());
                    if let Some(k) = &self.key {
                        request = request.bearer_auth(k);
                    }
                    let response = request.send().await.map_err(|e| format!("{}: {e}", self.url))?;
                    let status = response.status();
                    let bytes = response.bytes().await.map_err(|e| format!("{}: {e}", self.url))?;
                    if !status.is_success() {
                        let text: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
                        return Err(format!("{} answered {status}: {text}", self.url));
                    }
                    let reply: Reply = serde_json::from_slice(&bytes)
                        .map_err(|e| format!("{} sent no embeddings reply: {e}", self.url))?;
                    let mut out = vec![Vec::new(); texts.len()];
                    for item in reply.data {
                        let slot = out.get_mut(item.index).ok_or_else(|| {
                            format!("{} sent index {} for {} texts", self.url, item.index, texts.len())
                        })?;
                        *slot = normalised(item.embedding);
                    }
                    Ok(out)
                })
            })
            .join()
            .unwrap_or_else(|_| Err("the request thread panicked".into()))
        })
    }
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

impl Embedder for RemoteEmbedder {
    fn identity(&self) -> &EmbedderIdentity {
        &self.identity
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, CorpusError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            let vectors = self.request(chunk).map_err(CorpusError::Embed)?;
            if vectors.iter().any(|v| v.len() != self.identity.dim) {
                return Err(CorpusError::Embed(format!(
                    "{} returned a vector not of dimension {}",
                    self.url, self.identity.dim
                )));
            }
            out.extend(vectors);
        }
        Ok(out)
    }
}
