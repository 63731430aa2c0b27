//! The trace store's write-ahead log: what makes a step durable.
//!
//! A sled flush seals its log buffer and hands the write to sled's thread pool, whose
//! queue wakes every idle worker (sled 0.34): most of the CPU a durable step cost. So
//! the store writes each run and step record to sled without flushing it, and appends
//! the same bytes to this file, made durable by one `fdatasync` (shared by concurrent
//! writers: group commit in [`super::TraceStore`]). sled flushes in the background;
//! when the log grows past [`CHECKPOINT_BYTES`], sled is flushed once and the log
//! emptied. Opening a store replays the log into sled, so nothing acknowledged is lost
//! whichever of the two a crash interrupted.
//!
//! A record: length (u32, little-endian) of what follows the checksum, CRC-32 of it
//! (u32), the kind (one byte), the record's JSON (a config's preceded by its hash). A
//! torn last record (a crash mid-write, never acknowledged) fails its checksum and is
//! dropped, with everything after it.

use std::{
    fs::File,
    io::{Read, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

/// The log's file name in the store's directory.
pub(super) const FILE: &str = "steps.wal";

/// Past this size the log is folded into sled (one sled flush) and emptied.
pub(super) const CHECKPOINT_BYTES: u64 = 32 << 20;

/// A record read back: its kind and JSON.
pub(super) type Logged = (Kind, Vec<u8>);

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A run record.
    Run = 1,
    /// A step record.
    Step = 2,
    /// A run config: its SHA-256 (32 bytes), then its JSON.
    Config = 3,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Run),
            2 => Some(Self::Step),
            3 => Some(Self::Config),
            _ => None,
        }
    }
}

/// The log of one store.
pub(super) struct Wal {
    path: PathBuf,
    /// Appends go through the lock, one whole record at a time.
    file: Mutex<File>,
    /// A second handle for `fdatasync`, so appends go on while it runs.
    sync: File,
    len: AtomicU64,
}

impl Wal {
    /// Open (or create) the log in `dir` and read its valid records, dropping a torn tail.
    pub(super) fn open(dir: &Path) -> std::io::Result<(Self, Vec<Logged>)> {
        let path = dir.join(FILE);
        let mut file = std::fs::OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, valid) = parse(&bytes);
        if valid < bytes.len() {
            file.set_len(valid as u64)?;
            file.sync_data()?;
        }
        let sync = file.try_clone()?;
        let wal = Self { path, file: Mutex::new(file), sync, len: AtomicU64::new(valid as u64) };
        Ok((wal, records))
    }

    /// Append one record (not yet durable: see [`Wal::sync`]).
    pub(super) fn append(&self, kind: Kind, json: &[u8]) -> std::io::Result<()> {
        self.append_parts(kind, &[json])
    }

    /// Append a run config under its hash.
    pub(super) fn append_config(&self, hash: &[u8; 32], json: &[u8]) -> std::io::Result<()> {
        self.append_parts(Kind::Config, &[hash, json])
    }

    /// Append one record whose body is `kind` then `parts`, built in one buffer.
    fn append_parts(&self, kind: Kind, parts: &[&[u8]]) -> std::io::Result<()> {
        let body_len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut record = Vec::with_capacity(8 + body_len);
        record.extend_from_slice(&(body_len as u32).to_le_bytes());
        record.extend_from_slice(&[0; 4]); // the checksum, once the body is in
        record.push(kind as u8);
        for part in parts {
            record.extend_from_slice(part);
        }
        let crc = crc32fast::hash(&record[8..]);
        record[4..8].copy_from_slice(&crc.to_le_bytes());
        let mut file = self.lock()?;
        file.write_all(&record)?;
        self.len.fetch_add(record.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Make every record appended so far durable.
    pub(super) fn sync(&self) -> std::io::Result<()> {
        self.sync.sync_data()
    }

    /// Bytes in the log.
    pub(super) fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    /// Empty the log once `persist` has made everything in it durable elsewhere. No
    /// record is appended meanwhile, so none is dropped unpersisted.
    pub(super) fn checkpoint<E>(&self, persist: impl FnOnce() -> Result<(), E>) -> Result<(), CheckpointError<E>> {
        let file = self.lock().map_err(CheckpointError::Io)?;
        persist().map_err(CheckpointError::Persist)?;
        file.set_len(0).map_err(CheckpointError::Io)?;
        file.sync_data().map_err(CheckpointError::Io)?;
        self.len.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// The log's path, for errors.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::io::Result<std::sync::MutexGuard<'_, File>> {
        self.file.lock().map_err(|_| std::io::Error::other("write-ahead log lock poisoned"))
    }
}

/// A config record's hash and JSON.
pub(super) fn split_config(body: &[u8]) -> Option<([u8; 32], &[u8])> {
    let hash = <[u8; 32]>::try_from(body.get(..32)?).ok()?;
    Some((hash, body.get(32..)?))
}

/// Why a checkpoint failed.
pub(super) enum CheckpointError<E> {
    /// Persisting elsewhere failed; the log is kept.
    Persist(E),
    /// The log could not be emptied.
    Io(std::io::Error),
}

/// The valid records at the start of `bytes`, and how many bytes they take.
fn parse(bytes: &[u8]) -> (Vec<Logged>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let Some(body) = bytes.get(at + 8..at + 8 + len) else { break };
        if len == 0 || crc32fast::hash(body) != crc {
            break;
        }
        let Some(kind) = Kind::from_byte(body[0]) else { break };
        records.push((kind, body[1..].to_vec()));
        at += 8 + len;
    }
    (records, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_record_reads_back_as_its_hash_and_json() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let hash = [7u8; 32];
        {
            let (wal, _) = Wal::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            wal.append_config(&hash, br#"{"model":"m"}"#).unwrap_or_else(|e| panic!("{e}"));
            wal.append(Kind::Step, br#"{"index":0}"#).unwrap_or_else(|e| panic!("{e}"));
            wal.sync().unwrap_or_else(|e| panic!("{e}"));
        }
        let (_, records) = Wal::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].0, Kind::Config);
        assert_eq!(split_config(&records[0].1), Some((hash, br#"{"model":"m"}"#.as_slice())));
        assert_eq!(records[1], (Kind::Step, br#"{"index":0}"#.to_vec()));
        assert_eq!(split_config(&[1, 2, 3]), None, "too short for a hash");
    }

    #[test]
    fn records_read_back_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let (wal, old) = Wal::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            assert!(old.is_empty());
            wal.append(Kind::Run, br#"{"id":1}"#).unwrap_or_else(|e| panic!("{e}"));
            wal.append(Kind::Step, br#"{"index":0}"#).unwrap_or_else(|e| panic!("{e}"));
            wal.sync().unwrap_or_else(|e| panic!("{e}"));
        }
        // A crash mid-append: half a record at the end.
        let path = dir.path().join(FILE);
        let whole = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut torn = whole.clone();
        torn.extend_from_slice(&whole[..12]);
        std::fs::write(&path, &torn).unwrap_or_else(|e| panic!("{e}"));
        let (wal, records) = Wal::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records, vec![(Kind::Run, br#"{"id":1}"#.to_vec()), (Kind::Step, br#"{"index":0}"#.to_vec())]);
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).ok(), Some(whole.len() as u64), "the torn tail is cut");
        // A flipped byte inside a record ends the log there.
        let mut bad = whole.clone();
        let last = bad.len() - 2;
        bad[last] ^= 0x20;
        drop(wal);
        std::fs::write(&path, &bad).unwrap_or_else(|e| panic!("{e}"));
        let (wal, records) = Wal::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records.len(), 1);
        let emptied: Result<(), CheckpointError<()>> = wal.checkpoint(|| Ok(()));
        assert!(emptied.is_ok());
        assert_eq!((wal.len(), std::fs::metadata(&path).map(|m| m.len()).ok()), (0, Some(0)));
    }
}
