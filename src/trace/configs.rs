//! Run configs stored once, by content.
//!
//! A run's config (models, agents with their prompts, options) is most of its record,
//! and runs made with the same options share it: every question `serve` answers,
//! every item of an experiment. So the store keeps each distinct config once, in tree
//! `configs` keyed by its SHA-256, and a run record's `config` on disk is a reference,
//! `{"$ref": "sha256:<hex>"}`, put back when the record is read. Records written before
//! schema 3 hold their config inline and read as they are.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{error::locked, RunRecord, TraceError};

/// The key a reference is written under.
const REF_KEY: &str = "$ref";
/// What a reference's hash is prefixed with.
const REF_PREFIX: &str = "sha256:";
/// Past this many entries a cache starts again (it only saves work).
const CACHE_LIMIT: usize = 1_000;

/// A config's content hash.
pub(super) type Hash = [u8; 32];

/// The configs of one store.
pub(super) struct Configs {
    tree: sled::Tree,
    path: PathBuf,
    /// Hashes known to be in `tree`: storing one of them again is skipped.
    stored: Mutex<HashSet<Hash>>,
    /// Configs read back, by hash: a listing of many runs decodes each config once.
    decoded: Mutex<HashMap<Hash, Arc<Value>>>,
}

/// A config interned: the reference to write in its place, and its bytes if they were
/// new to the store (to be logged with the run).
pub(super) struct Interned {
    pub reference: Value,
    pub hash: Hash,
    pub new_bytes: Option<Vec<u8>>,
}

impl Configs {
    pub(super) fn new(tree: sled::Tree, path: PathBuf) -> Self {
        Self { tree, path, stored: Mutex::default(), decoded: Mutex::default() }
    }

    /// Store the config encoded as `bytes` unless it is stored already, and return its
    /// reference. Inserted in sled at once; the caller logs `new_bytes` before the
    /// record that refers to it.
    pub(super) fn intern(&self, bytes: Vec<u8>) -> Result<Interned, TraceError> {
        let hash: Hash = Sha256::digest(&bytes).into();
        let reference = reference(&hash);
        if locked(&self.stored, &self.path, "config cache")?.contains(&hash) {
            return Ok(Interned { reference, hash, new_bytes: None });
        }
        let present = self.tree.contains_key(hash).map_err(|e| self.sled_err(e))?;
        if !present {
            self.tree.insert(hash, bytes.as_slice()).map_err(|e| self.sled_err(e))?;
        }
        let mut stored = locked(&self.stored, &self.path, "config cache")?;
        if stored.len() >= CACHE_LIMIT {
            stored.clear();
        }
        stored.insert(hash);
        Ok(Interned { reference, hash, new_bytes: (!present).then_some(bytes) })
    }

    /// Put back a config found in the write-ahead log.
    pub(super) fn restore(&self, hash: Hash, bytes: &[u8]) -> Result<(), TraceError> {
        self.tree.insert(hash, bytes).map(|_| ()).map_err(|e| self.sled_err(e))
    }

    /// Replace `run`'s config reference, if it has one, with the config it names.
    pub(super) fn resolve(&self, run: &mut RunRecord) -> Result<(), TraceError> {
        let Some(hash) = referenced(&run.config) else { return Ok(()) };
        if let Some(config) = locked(&self.decoded, &self.path, "config cache")?.get(&hash) {
            run.config = Value::clone(config);
            return Ok(());
        }
        let missing = || TraceError::Corrupt {
            key: format!("{} (config {})", run.id, hex(&hash)),
            detail: "the run's config is not in the store".into(),
        };
        let raw = self.tree.get(hash).map_err(|e| self.sled_err(e))?.ok_or_else(missing)?;
        let config: Value = serde_json::from_slice(&raw).map_err(|e| TraceError::Corrupt {
            key: format!("{} (config {})", run.id, hex(&hash)),
            detail: e.to_string(),
        })?;
        let mut decoded = locked(&self.decoded, &self.path, "config cache")?;
        if decoded.len() >= CACHE_LIMIT {
            decoded.clear();
        }
        decoded.insert(hash, Arc::new(config.clone()));
        run.config = config;
        Ok(())
    }

    fn sled_err(&self, e: sled::Error) -> TraceError {
        TraceError::Store { path: self.path.clone(), detail: e.to_string() }
    }
}

/// The reference written in place of the config with `hash`.
fn reference(hash: &Hash) -> Value {
    let mut map = serde_json::Map::with_capacity(1);
    map.insert(REF_KEY.into(), Value::String(format!("{REF_PREFIX}{}", hex(hash))));
    Value::Object(map)
}

/// The hash `config` refers to, if it is a reference (an object with the one key `$ref`).
pub(super) fn referenced(config: &Value) -> Option<Hash> {
    let map = config.as_object().filter(|m| m.len() == 1)?;
    let hex = map.get(REF_KEY)?.as_str()?.strip_prefix(REF_PREFIX)?;
    if hex.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(hash)
}

fn hex(hash: &Hash) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    hash.iter().flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]]).map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_names_its_hash_and_nothing_else_is_one() {
        let hash: Hash = Sha256::digest(b"{}").into();
        assert_eq!(referenced(&reference(&hash)), Some(hash));
        for not_one in [
            serde_json::json!({}),
            serde_json::json!({"$ref": "sha256:00"}),
            serde_json::json!({"$ref": format!("md5:{}", hex(&hash))}),
            serde_json::json!({"$ref": format!("sha256:{}", hex(&hash)), "model": "m"}),
            serde_json::json!("sha256:abc"),
        ] {
            assert_eq!(referenced(&not_one), None, "{not_one}");
        }
    }
}
