//! A sentence embedder from a BERT-family safetensors directory, run in pure Rust:
//! candle's BERT and the `tokenizers` crate, pooled and normalised as the directory's
//! sentence-transformers configs say (mean pooling and L2 normalisation when they say
//! nothing: cosine search needs unit vectors).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::Deserialize;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::corpus::{CorpusError, Embedder, EmbedderIdentity};
use crate::llm::local::cache;

use super::EmbedError;

/// Texts run through the model at once. Texts are sorted by length first, so a batch
/// pads little; larger batches gained nothing on 2 cores.
const BATCH: usize = 16;

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    Mean,
    Cls,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceConfig {
    max_seq_length: Option<usize>,
}

/// The embedder.
pub struct BertEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    pooling: Pooling,
    identity: EmbedderIdentity,
}

impl std::fmt::Debug for BertEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertEmbedder").field("identity", &self.identity).finish()
    }
}

fn file_err(path: &Path, detail: impl std::fmt::Display) -> EmbedError {
    EmbedError::File { path: path.to_path_buf(), detail: detail.to_string() }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, EmbedError> {
    let bytes = crate::files::read(path, crate::files::FileKind::AgentConfig).map_err(|e| file_err(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| file_err(path, e))
}

impl BertEmbedder {
    /// Load `dir` (`config.json`, `model.safetensors`, `tokenizer.json`, and optionally
    /// `sentence_bert_config.json` and `1_Pooling/config.json`), named `model` and
    /// opened again by `spec`.
    pub fn load(dir: &Path, spec: &str, model: Option<&str>) -> Result<Self, EmbedError> {
        let need = |name: &str| -> Result<PathBuf, EmbedError> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(file_err(dir, format!("not a BERT embedder directory: it has no {name}")))
            }
        };
        let config_path = need("config.json")?;
        let weights = need("model.safetensors")?;
        let tokenizer_path = need("tokenizer.json")?;
        let config: Config = read_json(&config_path)?;
        let max_len = match dir.join("sentence_bert_config.json") {
            p if p.is_file() => read_json::<SentenceConfig>(&p)?.max_seq_length,
            _ => None,
        }
        .unwrap_or(config.max_position_embeddings)
        .min(config.max_position_embeddings);
        let pooling = match dir.join("1_Pooling/config.json") {
            p if p.is_file() => {
                let c: PoolingConfig = read_json(&p)?;
                if c.pooling_mode_cls_token && !c.pooling_mode_mean_tokens {
                    Pooling::Cls
                } else {
                    Pooling::Mean
                }
            }
            _ => Pooling::Mean,
        };
        let digest = cache::file_sha256(&weights)?;
        let bytes = {
            use std::io::Read as _;
            let (mut file, len) = crate::files::open(&weights).map_err(|e| file_err(&weights, e))?;
            let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            file.read_to_end(&mut bytes).map_err(|e| file_err(&weights, e))?;
            bytes
        };
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)
            .map_err(|e| file_err(&weights, e))?;
        let bert = BertModel::load(vb, &config).map_err(|e| file_err(&weights, format!("not a BERT model: {e}")))?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| file_err(&tokenizer_path, e))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
            .map_err(|e| file_err(&tokenizer_path, e))?;
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
        let name = model.map(str::to_string).unwrap_or_else(|| {
            dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
        });
        let identity = EmbedderIdentity { spec: spec.to_string(), model: name, digest, dim: config.hidden_size };
        Ok(Self { model: bert, tokenizer, pooling, identity })
    }

    /// Vectors of one batch, in its order.
    fn batch(&self, texts: &[&str]) -> candle_core::Result<Vec<Vec<f32>>> {
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(candle_core::Error::wrap)?;
        let len = encodings.first().map(|e| e.len()).unwrap_or(0);
        let ids: Vec<u32> = encodings.iter().flat_map(|e| e.get_ids().to_vec()).collect();
        let mask: Vec<u32> = encodings.iter().flat_map(|e| e.get_attention_mask().to_vec()).collect();
        let shape = (texts.len(), len);
        let ids = Tensor::from_vec(ids, shape, &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, shape, &Device::Cpu)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        let pooled = match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let summed = hidden.broadcast_mul(&m)?.sum(1)?;
                let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
                summed.broadcast_div(&counts)?
            }
        };
        let norms = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        pooled.broadcast_div(&norms)?.to_vec2()
    }
}

impl Embedder for BertEmbedder {
    fn identity(&self) -> &EmbedderIdentity {
        &self.identity
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, CorpusError> {
        // Longest first by characters (a cheap proxy for tokens), so each batch pads
        // to lengths alike; the vectors go back in the caller's order.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            let vectors = self.batch(&batch).map_err(|e| CorpusError::Embed(format!("{}: {e}", self.identity.spec)))?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}
