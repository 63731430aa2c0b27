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
//! A record: a marker ([`MARKER`], 4 bytes), the length (u32, little-endian) of what
//! follows the checksum, CRC-32 of it (u32), the kind (one byte), the record's JSON (a
//! config's preceded by its hash). The marker lets a reader find the next record after
//! a damaged one: its bytes cannot occur inside JSON (0xD3 is a UTF-8 lead byte that
//! 0x5E cannot follow). Logs written before the marker (no marker at all) read as they
//! did: up to the first bad record.
//!
//! What a reader makes of damage, as sled's and PostgreSQL's recovery do: a bad record
//! with nothing readable after it is a torn tail (a crash mid-append, never
//! acknowledged) and is dropped; a bad record with readable records after it is
//! corruption: reported, skipped, and the records after it recovered; the damaged file
//! is kept aside ([`Wal::keep_aside`]) before the log is emptied.

use std::{
    fs::File,
    io::{Read, Write},
    ops::Range,
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

/// What every record starts with.
const MARKER: [u8; 4] = [0xD3, 0x5E, 0xC4, 0xA7];

/// Bytes before a record's body: marker, length, checksum.
const HEADER: usize = 12;

/// Damaged logs kept aside beside the store, newest first; older ones are removed.
const KEEP_DAMAGED: usize = 3;

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

/// What reading a log found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Parsed {
    /// The records whose checksums hold, in order.
    pub records: Vec<Logged>,
    /// Byte ranges skipped in the middle of the log (readable records follow each).
    pub damaged: Vec<Range<u64>>,
    /// Records recovered after the first damaged range.
    pub after_damage: usize,
    /// Bytes of a torn last record, dropped.
    pub torn_tail: u64,
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
    /// Open (or create) the log in `dir` and read it. A torn tail alone is cut off at
    /// once; a damaged log is left as it is for [`Wal::keep_aside`].
    pub(super) fn open(dir: &Path) -> std::io::Result<(Self, Parsed)> {
        let path = dir.join(FILE);
        // Read whole below: a device or FIFO put in its place would never end or block.
        if std::fs::metadata(&path).is_ok_and(|m| !m.is_file()) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
        }
        let mut file = std::fs::OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let parsed = parse(&bytes);
        let mut len = bytes.len() as u64;
        if parsed.torn_tail > 0 && parsed.damaged.is_empty() {
            len -= parsed.torn_tail;
            file.set_len(len)?;
            file.sync_data()?;
        }
        let sync = file.try_clone()?;
        let wal = Self { path, file: Mutex::new(file), sync, len: AtomicU64::new(len) };
        Ok((wal, parsed))
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
        let record = encode(kind, parts);
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

    /// Copy the log as it is now to `steps.wal.corrupt-<UTC time>` beside it, for
    /// inspection, and remove all but the newest [`KEEP_DAMAGED`] such copies. Returns
    /// the copy's path.
    pub(super) fn keep_aside(&self) -> std::io::Result<PathBuf> {
        let _appends = self.lock()?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let mut copy = dir.join(format!("{FILE}.corrupt-{stamp}"));
        for n in 1.. {
            if !copy.exists() {
                break;
            }
            copy = dir.join(format!("{FILE}.corrupt-{stamp}-{n}"));
        }
        std::fs::copy(&self.path, &copy)?;
        File::open(&copy)?.sync_all()?;
        let prefix = format!("{FILE}.corrupt-");
        let mut kept: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect();
        // The time stamps sort as text.
        kept.sort();
        let excess = kept.len().saturating_sub(KEEP_DAMAGED);
        for old in &kept[..excess] {
            std::fs::remove_file(old)?;
        }
        Ok(copy)
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

/// One record as it is written: marker, length, checksum, kind, `parts`.
fn encode(kind: Kind, parts: &[&[u8]]) -> Vec<u8> {
    let body_len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut record = Vec::with_capacity(HEADER + body_len);
    record.extend_from_slice(&MARKER);
    record.extend_from_slice(&(body_len as u32).to_le_bytes());
    record.extend_from_slice(&[0; 4]); // the checksum, once the body is in
    record.push(kind as u8);
    for part in parts {
        record.extend_from_slice(part);
    }
    let crc = crc32fast::hash(&record[HEADER..]);
    record[8..HEADER].copy_from_slice(&crc.to_le_bytes());
    record
}

/// The record at the start of `bytes` if it is whole and its checksum holds, with the
/// bytes it takes. `header` is where the length starts (after the marker, if any).
fn record_at(bytes: &[u8], header: usize) -> Option<(Logged, usize)> {
    let field = |at: usize| bytes.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_le_bytes);
    let len = field(header)? as usize;
    let crc = field(header + 4)?;
    let start = header + 8;
    let body = bytes.get(start..start.checked_add(len)?)?;
    if len == 0 || crc32fast::hash(body) != crc {
        return None;
    }
    let kind = Kind::from_byte(body[0])?;
    Some(((kind, body[1..].to_vec()), start + len))
}

/// Read a log: a log with markers, or one written before them, whichever reads more
/// records (a log whose first marker is damaged still reads as a log with markers).
pub(super) fn parse(bytes: &[u8]) -> Parsed {
    if bytes.is_empty() || bytes.starts_with(&MARKER) {
        return parse_marked(bytes);
    }
    let (marked, legacy) = (parse_marked(bytes), parse_legacy(bytes));
    if legacy.records.len() >= marked.records.len() {
        legacy
    } else {
        marked
    }
}

/// A log with markers: records in order; after a bad one, the next marker that starts
/// a good record.
fn parse_marked(bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut at = 0;
    while at < bytes.len() {
        let here = &bytes[at..];
        if let Some((record, used)) = here.starts_with(&MARKER).then(|| record_at(here, 4)).flatten() {
            if !parsed.damaged.is_empty() {
                parsed.after_damage += 1;
            }
            parsed.records.push(record);
            at += used;
            continue;
        }
        match next_record(bytes, at + 1) {
            Some(next) => {
                parsed.damaged.push(at as u64..next as u64);
                at = next;
            }
            None => {
                parsed.torn_tail = (bytes.len() - at) as u64;
                break;
            }
        }
    }
    parsed
}

/// The offset of the first marker at or after `from` that starts a good record.
fn next_record(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(found) = bytes.get(at..)?.windows(MARKER.len()).position(|w| w == MARKER) {
        let start = at + found;
        if record_at(&bytes[start..], 4).is_some() {
            return Some(start);
        }
        at = start + 1;
    }
    None
}

/// A log written before markers: records up to the first bad one. What follows a bad
/// record cannot be found again; it counts as damaged unless the bad record is the last.
fn parse_legacy(bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut at = 0;
    while at < bytes.len() {
        match record_at(&bytes[at..], 0) {
            Some((record, used)) => {
                parsed.records.push(record);
                at += used;
            }
            None => break,
        }
    }
    if at < bytes.len() {
        // A whole record whose checksum fails, with more after it: damage. Anything
        // else (a record running past the end) is a torn tail.
        let declared =
            bytes.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(|b| u32::from_le_bytes(b) as usize + 8);
        match declared {
            Some(n) if at.saturating_add(n) < bytes.len() => parsed.damaged.push(at as u64..bytes.len() as u64),
            _ => parsed.torn_tail = (bytes.len() - at) as u64,
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: Kind, json: &str) -> Logged {
        (kind, json.as_bytes().to_vec())
    }

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
        let (_, parsed) = Wal::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let records = parsed.records;
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].0, Kind::Config);
        assert_eq!(split_config(&records[0].1), Some((hash, br#"{"model":"m"}"#.as_slice())));
        assert_eq!(records[1], record(Kind::Step, r#"{"index":0}"#));
        assert_eq!(split_config(&[1, 2, 3]), None, "too short for a hash");
    }

    #[test]
    fn records_read_back_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let (wal, old) = Wal::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            assert!(old.records.is_empty());
            wal.append(Kind::Run, br#"{"id":1}"#).unwrap_or_else(|e| panic!("{e}"));
            wal.append(Kind::Step, br#"{"index":0}"#).unwrap_or_else(|e| panic!("{e}"));
            wal.sync().unwrap_or_else(|e| panic!("{e}"));
        }
        // A crash mid-append: half a record at the end.
        let path = dir.path().join(FILE);
        let whole = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut torn = whole.clone();
        torn.extend_from_slice(&whole[..14]);
        std::fs::write(&path, &torn).unwrap_or_else(|e| panic!("{e}"));
        let (wal, parsed) = Wal::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.records, vec![record(Kind::Run, r#"{"id":1}"#), record(Kind::Step, r#"{"index":0}"#)]);
        assert_eq!((parsed.torn_tail, parsed.damaged.len()), (14, 0));
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).ok(), Some(whole.len() as u64), "the torn tail is cut");
        // A flipped byte in the last record, nothing after it: a torn tail too.
        let mut bad = whole.clone();
        let last = bad.len() - 2;
        bad[last] ^= 0x20;
        drop(wal);
        std::fs::write(&path, &bad).unwrap_or_else(|e| panic!("{e}"));
        let (wal, parsed) = Wal::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((parsed.records.len(), parsed.damaged.len()), (1, 0));
        let emptied: Result<(), CheckpointError<()>> = wal.checkpoint(|| Ok(()));
        assert!(emptied.is_ok());
        assert_eq!((wal.len(), std::fs::metadata(&path).map(|m| m.len()).ok()), (0, Some(0)));
    }

    /// A log of `n` step records, and where each starts.
    fn log_of(n: u32) -> (Vec<u8>, Vec<usize>) {
        let (mut bytes, mut starts) = (Vec::new(), Vec::new());
        for i in 0..n {
            starts.push(bytes.len());
            bytes.extend(encode(Kind::Step, &[format!(r#"{{"index":{i}}}"#).as_bytes()]));
        }
        (bytes, starts)
    }

    #[test]
    fn a_damaged_record_in_the_middle_is_skipped_and_the_rest_recovered() {
        let (whole, starts) = log_of(10);
        // Any one bit flipped in record 3 (marker, length, checksum, kind or body).
        for offset in starts[3]..starts[4] {
            for bit in [0, 3, 7] {
                let mut bad = whole.clone();
                bad[offset] ^= 1 << bit;
                let parsed = parse(&bad);
                let indexes: Vec<String> =
                    parsed.records.iter().map(|(_, j)| String::from_utf8_lossy(j).into_owned()).collect();
                assert_eq!(parsed.records.len(), 9, "offset {offset} bit {bit}: {indexes:?}");
                assert!(!indexes.contains(&r#"{"index":3}"#.to_string()));
                assert_eq!(parsed.damaged, vec![starts[3] as u64..starts[4] as u64], "offset {offset} bit {bit}");
                assert_eq!((parsed.after_damage, parsed.torn_tail), (6, 0));
            }
        }
        // Damage and a torn tail together.
        let mut both = whole.clone();
        both[starts[5] + 13] ^= 0xff;
        both.extend_from_slice(&whole[..20]);
        let parsed = parse(&both);
        assert_eq!((parsed.records.len(), parsed.damaged.len(), parsed.torn_tail), (9, 1, 20));
    }

    #[test]
    fn logs_written_before_markers_read_as_they_did() {
        let legacy_record = |json: &str| {
            let mut body = vec![Kind::Step as u8];
            body.extend_from_slice(json.as_bytes());
            let mut r = (body.len() as u32).to_le_bytes().to_vec();
            r.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
            r.extend(body);
            r
        };
        let mut old: Vec<u8> = (0..5).flat_map(|i| legacy_record(&format!(r#"{{"index":{i}}}"#))).collect();
        let parsed = parse(&old);
        assert_eq!((parsed.records.len(), parsed.torn_tail, parsed.damaged.len()), (5, 0, 0));
        // A torn tail is dropped; a bad record with more after it is damage.
        let one = legacy_record(r#"{"index":9}"#);
        old.extend_from_slice(&one[..10]);
        assert_eq!(parse(&old).torn_tail, 10);
        old.truncate(old.len() - 10);
        let second = legacy_record(r#"{"index":0}"#).len();
        old[second + 9] ^= 1;
        let parsed = parse(&old);
        assert_eq!((parsed.records.len(), parsed.damaged.len()), (1, 1));
    }

    #[test]
    fn damaged_logs_are_kept_aside_newest_few_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (wal, _) = Wal::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        wal.append(Kind::Run, br#"{"id":1}"#).unwrap_or_else(|e| panic!("{e}"));
        let mut copies = Vec::new();
        for _ in 0..5 {
            copies.push(wal.keep_aside().unwrap_or_else(|e| panic!("{e}")));
        }
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(left.len(), KEEP_DAMAGED);
        for newest in &copies[2..] {
            assert!(left.contains(newest), "{newest:?} kept");
            assert_eq!(std::fs::read(newest).ok(), std::fs::read(dir.path().join(FILE)).ok());
        }
    }
}
