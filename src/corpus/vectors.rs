//! The passage vectors of an index: one file beside tantivy's, named in the commit
//! payload, searched exactly.
//!
//! Each update writes a whole new file (`vectors-<id>.bin`, synced) before the tantivy
//! commit that names it; the commit is the switch. An interrupted update leaves the
//! payload naming the previous file, so the documents and their vectors stay at the
//! same commit. Files no commit names are removed after the next commit.
//!
//! Layout, little-endian: magic `RCHKVEC1`, `u32` dimension, `u64` count, then per
//! vector its passage id and document id (`u32` length + UTF-8 each), then the count ×
//! dimension `f32` values, then a CRC-32 of everything before it.

use std::{
    io::{Read, Write},
    path::Path,
};

use serde::{Deserialize, Serialize};

use super::{CorpusError, EmbedderIdentity};

const MAGIC: &[u8; 8] = b"RCHKVEC1";

/// What the commit payload says of the vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorsRef {
    /// File name inside the index directory.
    pub file: String,
    /// The embedder that made them.
    pub embedder: EmbedderIdentity,
    /// Number of vectors.
    pub count: usize,
    /// The file's CRC-32 trailer, so a file swapped for another is caught.
    pub crc32: u32,
}

/// Vectors in memory: ids and one row-major block of unit vectors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vectors {
    /// Dimension.
    pub dim: usize,
    /// Passage id of each row.
    pub passage_ids: Vec<String>,
    /// Document id of each row.
    pub doc_ids: Vec<String>,
    /// `len × dim` values.
    pub data: Vec<f32>,
}

fn bad(path: &Path, detail: impl std::fmt::Display) -> CorpusError {
    CorpusError::Index {
        path: path.to_path_buf(),
        detail: format!("vector file is corrupt or cut: {detail} (`recheck index --embed` on the index rebuilds it)"),
    }
}

impl Vectors {
    /// Empty, of dimension `dim`.
    pub fn new(dim: usize) -> Self {
        Self { dim, ..Default::default() }
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.passage_ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.passage_ids.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Append one vector.
    pub fn push(&mut self, passage_id: String, doc_id: String, vector: &[f32]) {
        self.passage_ids.push(passage_id);
        self.doc_ids.push(doc_id);
        self.data.extend_from_slice(vector);
    }

    /// The vectors whose document `keep` accepts, in order.
    pub fn retain_docs(self, keep: impl Fn(&str) -> bool) -> Self {
        let mut out = Self::new(self.dim);
        for i in 0..self.len() {
            if keep(&self.doc_ids[i]) {
                out.push(self.passage_ids[i].clone(), self.doc_ids[i].clone(), self.row(i));
            }
        }
        out
    }

    /// Write to a new file in `dir` (synced), returning its reference.
    pub fn write(&self, dir: &Path, embedder: &EmbedderIdentity) -> Result<VectorsRef, CorpusError> {
        let mut bytes = Vec::with_capacity(20 + self.data.len() * 4 + self.len() * 24);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(self.dim as u32).to_le_bytes());
        bytes.extend_from_slice(&(self.len() as u64).to_le_bytes());
        for (p, d) in self.passage_ids.iter().zip(&self.doc_ids) {
            for s in [p, d] {
                bytes.extend_from_slice(&(s.len() as u32).to_le_bytes());
                bytes.extend_from_slice(s.as_bytes());
            }
        }
        for x in &self.data {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        let crc32 = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc32.to_le_bytes());
        let file = format!("vectors-{}.bin", uuid::Uuid::now_v7().simple());
        let path = dir.join(&file);
        let io = |e| CorpusError::Io { path: path.clone(), source: e };
        let mut out = std::fs::File::create(&path).map_err(io)?;
        out.write_all(&bytes).map_err(io)?;
        out.sync_all().map_err(io)?;
        Ok(VectorsRef { file, embedder: embedder.clone(), count: self.len(), crc32 })
    }

    /// Read the file `reference` names in `dir`, checking its length, checksum and that
    /// it holds what the commit says.
    pub fn read(dir: &Path, reference: &VectorsRef) -> Result<Self, CorpusError> {
        let path = dir.join(&reference.file);
        let (mut file, len) =
            crate::files::open(&path).map_err(|e| CorpusError::Io { path: path.clone(), source: e.into_io() })?;
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(|e| CorpusError::Io { path: path.clone(), source: e })?;
        let vectors = parse(&bytes, &path)?;
        if vectors.dim != reference.embedder.dim || vectors.len() != reference.count {
            return Err(bad(
                &path,
                format!(
                    "it holds {} vectors of {} dimensions, the index's commit says {} of {}",
                    vectors.len(),
                    vectors.dim,
                    reference.count,
                    reference.embedder.dim
                ),
            ));
        }
        let trailer = bytes.len() - 4;
        if bytes[trailer..] != reference.crc32.to_le_bytes() {
            return Err(bad(&path, "it is not the file the index's commit names (checksum differs)"));
        }
        Ok(vectors)
    }
}

fn parse(bytes: &[u8], path: &Path) -> Result<Vectors, CorpusError> {
    if bytes.len() < MAGIC.len() + 16 || &bytes[..8] != MAGIC {
        return Err(bad(path, "it does not start with a recheck vector header"));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    if crc32fast::hash(body) != stored {
        return Err(bad(path, format!("checksum mismatch over {} bytes", body.len())));
    }
    let mut cursor = Cursor { bytes: body, at: 8, path };
    let dim = cursor.u32()? as usize;
    let count = usize::try_from(cursor.u64()?).map_err(|_| bad(path, "count too large"))?;
    if dim == 0 || dim > 65_536 {
        return Err(bad(path, format!("dimension {dim}")));
    }
    let mut vectors = Vectors::new(dim);
    for _ in 0..count {
        let p = cursor.string()?;
        let d = cursor.string()?;
        vectors.passage_ids.push(p);
        vectors.doc_ids.push(d);
    }
    let values = count.checked_mul(dim).ok_or_else(|| bad(path, "size overflows"))?;
    let block = cursor.take(values.checked_mul(4).ok_or_else(|| bad(path, "size overflows"))?)?;
    vectors.data = block.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if cursor.at != body.len() {
        return Err(bad(path, format!("{} bytes past the vectors", body.len() - cursor.at)));
    }
    Ok(vectors)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CorpusError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| bad(self.path, format!("it ends at byte {} inside a record", self.bytes.len())))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, CorpusError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, CorpusError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn string(&mut self) -> Result<String, CorpusError> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| bad(self.path, "an id is not UTF-8"))
    }
}

/// Delete vector files in `dir` other than `keep` (left by earlier commits or by an
/// interrupted update). Best effort: a file left behind wastes space, nothing more.
pub fn remove_stale(dir: &Path, keep: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("vectors-") && name.ends_with(".bin") && Some(name.as_str()) != keep {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Dot product; the vectors are unit length, so this is their cosine. Eight lanes of
/// partial sums let the compiler vectorise it without fast-math.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Rows scanned by one thread at least: below it a second thread costs more than it saves.
const ROWS_PER_THREAD: usize = 50_000;

/// The `n` rows most similar to `query` as (row, cosine), best first, ties by row.
/// Exact: every row is scored; large sets are split across the machine's cores.
pub fn nearest(vectors: &Vectors, query: &[f32], n: usize) -> Vec<(usize, f32)> {
    if n == 0 || vectors.is_empty() || query.len() != vectors.dim {
        return Vec::new();
    }
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    let threads = (vectors.len() / ROWS_PER_THREAD).clamp(1, cores);
    let mut out: Vec<(usize, f32)> = if threads == 1 {
        scan(vectors, query, n, 0..vectors.len())
    } else {
        let chunk = vectors.len().div_ceil(threads);
        std::thread::scope(|s| {
            let parts: Vec<_> = (0..threads)
                .map(|t| {
                    let rows = t * chunk..((t + 1) * chunk).min(vectors.len());
                    s.spawn(move || scan(vectors, query, n, rows))
                })
                .collect();
            // A scan thread only computes dot products; one that panicked would be a
            // bug, and its rows are then left out rather than the search failing.
            parts.into_iter().flat_map(|p| p.join().unwrap_or_default()).collect()
        })
    };
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out.truncate(n);
    out
}

/// The `n` best of `rows`, unordered.
fn scan(vectors: &Vectors, query: &[f32], n: usize, rows: std::ops::Range<usize>) -> Vec<(usize, f32)> {
    best(rows.map(|i| (i, dot(vectors.row(i), query))), n)
}

/// The `n` highest-scoring of `scored` (row, score) pairs, unordered, ties to the lower
/// row: a bounded min-heap keeps a scan at one pass and O(n) memory.
fn best(scored: impl Iterator<Item = (usize, f32)>, n: usize) -> Vec<(usize, f32)> {
    let mut heap: std::collections::BinaryHeap<Entry> = std::collections::BinaryHeap::with_capacity(n + 1);
    for (row, score) in scored {
        if heap.len() < n {
            heap.push(Entry { score, row });
        } else if heap.peek().is_some_and(|worst| Entry { score, row } < *worst) {
            heap.pop();
            heap.push(Entry { score, row });
        }
    }
    heap.into_iter().map(|e| (e.row, e.score)).collect()
}

/// Rows above which dense search scans int8 codes first: up to here the exact f32 scan
/// stays under 20 ms a query on 2 cores (200,000 rows of 384: 14.6 ms p50, 19.6 ms p99;
/// the int8 scan 9.4 ms with recall@100 1.000; BENCHMARKS.md).
pub const QUANTISED_ABOVE: usize = 200_000;

/// Candidates per wanted result that the int8 scan hands to exact f32 re-scoring.
const RESCORE: usize = 4;

/// The vectors as int8 codes, one scale per row (symmetric, by the row's largest
/// magnitude): a quarter of the f32 bytes to stream through per query.
#[derive(Debug, Clone, Default)]
pub struct Quantised {
    codes: Vec<i8>,
    scales: Vec<f32>,
    dim: usize,
}

fn quantise(row: &[f32], out: &mut Vec<i8>) -> f32 {
    let max = row.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    out.extend(row.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8));
    scale
}

impl Quantised {
    /// The codes of `vectors`.
    pub fn of(vectors: &Vectors) -> Self {
        let mut codes = Vec::with_capacity(vectors.data.len());
        let scales = (0..vectors.len()).map(|i| quantise(vectors.row(i), &mut codes)).collect();
        Self { codes, scales, dim: vectors.dim }
    }
}

fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut lanes = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            lanes[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    lanes.iter().sum::<i32>() + tail
}

/// The `n` rows nearest to `query` by an int8 scan of `codes` whose best `4n` are
/// re-scored exactly in f32: approximate (a row the int8 scores leave out of the `4n`
/// is missed), with recall against [`nearest`] measured in the retrieval benchmark.
pub fn nearest_quantised(vectors: &Vectors, codes: &Quantised, query: &[f32], n: usize) -> Vec<(usize, f32)> {
    if n == 0 || vectors.is_empty() || query.len() != vectors.dim || codes.dim != vectors.dim {
        return Vec::new();
    }
    let mut q = Vec::with_capacity(query.len());
    let q_scale = quantise(query, &mut q);
    let approximate = codes
        .codes
        .chunks_exact(codes.dim)
        .enumerate()
        .map(|(i, row)| (i, dot_i8(row, &q) as f32 * codes.scales[i] * q_scale));
    let candidates = best(approximate, n.saturating_mul(RESCORE));
    let mut out: Vec<(usize, f32)> =
        candidates.into_iter().map(|(row, _)| (row, dot(vectors.row(row), query))).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out.truncate(n);
    out
}

/// A heap entry ordered so that the worst hit (lowest score, then highest row) is the
/// greatest, and sits on top of the max-heap to be evicted.
#[derive(Debug, Clone, Copy)]
struct Entry {
    score: f32,
    row: usize,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.score.total_cmp(&self.score).then(self.row.cmp(&other.row))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn identity(dim: usize) -> EmbedderIdentity {
        EmbedderIdentity { spec: "test".into(), model: "m".into(), digest: "d".into(), dim }
    }

    #[test]
    fn a_written_file_reads_back_and_a_cut_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = Vectors::new(3);
        v.push("a#0".into(), "a".into(), &[1.0, 0.0, 0.0]);
        v.push("b#0".into(), "b".into(), &[0.0, 0.6, 0.8]);
        let r = v.write(dir.path(), &identity(3)).unwrap();
        assert_eq!(Vectors::read(dir.path(), &r).unwrap(), v);
        let path = dir.path().join(&r.file);
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 7, 20, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = Vectors::read(dir.path(), &r).unwrap_err().to_string();
            assert!(err.contains(&r.file) && err.contains("corrupt or cut"), "cut at {cut}: {err}");
        }
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(Vectors::read(dir.path(), &r).unwrap_err().to_string().contains("checksum"));
    }

    #[test]
    fn nearest_is_the_exact_top_n_with_ties_by_row() {
        let mut v = Vectors::new(2);
        for (i, x) in [0.1f32, 0.9, 0.5, 0.9, -1.0].iter().enumerate() {
            v.push(format!("p{i}"), "d".into(), &[*x, 0.0]);
        }
        assert_eq!(nearest(&v, &[1.0, 0.0], 3), vec![(1, 0.9), (3, 0.9), (2, 0.5)]);
        assert!(nearest(&v, &[1.0], 3).is_empty());
        assert!(nearest(&Vectors::new(2), &[1.0, 0.0], 3).is_empty());
    }

    #[test]
    fn the_int8_scan_re_scores_exactly_and_finds_the_clear_winners() {
        let mut v = Vectors::new(32);
        let mut state = 12345u64;
        for i in 0..2000 {
            let row: Vec<f32> = (0..32)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect();
            let n = row.iter().map(|a| a * a).sum::<f32>().sqrt();
            v.push(format!("p{i}"), "d".into(), &row.iter().map(|a| a / n).collect::<Vec<_>>());
        }
        let q: Vec<f32> = v.row(123).to_vec();
        let codes = Quantised::of(&v);
        let approx = nearest_quantised(&v, &codes, &q, 10);
        let exact = nearest(&v, &q, 10);
        assert_eq!(approx[0].0, 123, "the query's own row is the clear winner");
        // Scores are the exact f32 cosines, so every hit found is scored as exact does.
        for (row, score) in &approx {
            assert_eq!(*score, dot(v.row(*row), &q));
        }
        let found = approx.iter().filter(|h| exact.contains(h)).count();
        assert!(found >= 9, "{found} of the exact top 10");
    }

    #[test]
    fn a_split_scan_finds_what_one_thread_finds() {
        let mut v = Vectors::new(4);
        for i in 0..(2 * ROWS_PER_THREAD + 17) {
            let x = ((i * 7919) % 1000) as f32 / 1000.0;
            v.push(format!("p{i}"), "d".into(), &[x, 1.0 - x, 0.5, 0.0]);
        }
        let q = [0.9, 0.1, 0.5, 0.0];
        let mut single = scan(&v, &q, 25, 0..v.len());
        single.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(nearest(&v, &q, 25), single);
    }

    #[test]
    fn dot_matches_the_plain_sum_on_odd_lengths() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.25).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-4);
    }
}
