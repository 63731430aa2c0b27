//! Reading the files users name: regular files only, each kind bounded in size.
//!
//! A path on a command line or in a config can name a device (`/dev/zero` never ends),
//! a FIFO (opening one blocks until a writer comes) or a file far larger than anything
//! recheck should hold in memory. Every user-named file is read through here: its type
//! is checked before it is opened (and again on the open handle, which is opened
//! non-blocking so a FIFO swapped in meanwhile cannot hang it), and at most its kind's
//! [`FileKind::limit`] is read, the error naming the file and the limit.

use std::{
    fs::File,
    io::{BufRead, Read},
    path::{Path, PathBuf},
};

/// What a file is read as; each kind has its own size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A prompt template (`prompts/*.j2`, `--change prompt.NAME=FILE`).
    Prompt,
    /// An agent config (`agents/*.toml`, `--change agent.NAME=FILE`).
    AgentConfig,
    /// A question (`ask --file`, `ask -`).
    Question,
    /// An experiment spec (`eval run SPEC.toml`).
    Spec,
    /// One document to index, or a dataset file read whole.
    Document,
    /// One line of a JSONL file read line by line (a corpus, a trace export). Large
    /// enough for the largest record recheck writes: a step holding a 10 MB context
    /// and an 8 MiB reply, JSON-escaped.
    JsonLine,
}

impl FileKind {
    /// The most bytes read of a file of this kind.
    pub const fn limit(self) -> u64 {
        const MIB: u64 = 1 << 20;
        match self {
            Self::Prompt | Self::AgentConfig | Self::Spec => MIB,
            Self::Question => 16 * MIB,
            Self::Document => 512 * MIB,
            Self::JsonLine => 64 * MIB,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Prompt => "prompt template",
            Self::AgentConfig => "agent config",
            Self::Question => "question",
            Self::Spec => "experiment spec",
            Self::Document => "document or dataset file",
            Self::JsonLine => "JSONL line",
        }
    }
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What was wrong.
    pub problem: FileProblem,
}

/// What was wrong with a file (the message of [`FileError`] without its path).
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    /// Opening or reading it failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// It is a directory, device, FIFO or socket.
    #[error("not a regular file (it is a {0}); give a file")]
    NotRegular(&'static str),
    /// It (or one line of it) is over its kind's limit.
    #[error("over the {limit}-byte limit for {what}s")]
    TooLarge {
        /// What the file was read as.
        what: &'static str,
        /// The limit in bytes.
        limit: u64,
    },
    /// It is not UTF-8 text.
    #[error("not UTF-8 text (byte {at})")]
    NotText {
        /// Offset of the first invalid byte.
        at: usize,
    },
}

impl FileError {
    fn new(path: &Path, problem: impl Into<FileProblem>) -> Self {
        Self { path: path.to_path_buf(), problem: problem.into() }
    }

    /// The problem as an I/O error, for error types that already name the path.
    pub fn into_io(self) -> std::io::Error {
        match self.problem {
            FileProblem::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

/// What a file's type is, when it is not a regular file.
fn not_regular(meta: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt as _;
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("directory")
    } else if t.is_fifo() {
        Some("FIFO")
    } else if t.is_char_device() {
        Some("character device")
    } else if t.is_block_device() {
        Some("block device")
    } else if t.is_socket() {
        Some("socket")
    } else {
        Some("special file")
    }
}

/// Open `path` for reading if it is a regular file (a link is followed), with its size.
pub fn open(path: &Path) -> Result<(File, u64), FileError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let meta = std::fs::metadata(path).map_err(|e| FileError::new(path, e))?;
    if let Some(what) = not_regular(&meta) {
        return Err(FileError::new(path, FileProblem::NotRegular(what)));
    }
    // Non-blocking, so that a FIFO put in its place since the check cannot block the
    // open; the handle's own type is checked again.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| FileError::new(path, e))?;
    let meta = file.metadata().map_err(|e| FileError::new(path, e))?;
    if let Some(what) = not_regular(&meta) {
        return Err(FileError::new(path, FileProblem::NotRegular(what)));
    }
    Ok((file, meta.len()))
}

/// The bytes of regular file `path`, at most `kind`'s limit.
pub fn read(path: &Path, kind: FileKind) -> Result<Vec<u8>, FileError> {
    let (file, len) = open(path)?;
    let too_large = || FileError::new(path, FileProblem::TooLarge { what: kind.name(), limit: kind.limit() });
    if len > kind.limit() {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // One byte past the limit tells a file that grew since it was measured.
    file.take(kind.limit() + 1).read_to_end(&mut bytes).map_err(|e| FileError::new(path, e))?;
    if bytes.len() as u64 > kind.limit() {
        return Err(too_large());
    }
    Ok(bytes)
}

/// The text of regular file `path`, at most `kind`'s limit.
pub fn read_to_string(path: &Path, kind: FileKind) -> Result<String, FileError> {
    text(path, read(path, kind)?)
}

/// Standard input as text, at most `kind`'s limit (named `-` in errors).
pub fn read_stdin(kind: FileKind) -> Result<String, FileError> {
    let path = Path::new("-");
    let mut bytes = Vec::new();
    std::io::stdin().lock().take(kind.limit() + 1).read_to_end(&mut bytes).map_err(|e| FileError::new(path, e))?;
    if bytes.len() as u64 > kind.limit() {
        return Err(FileError::new(path, FileProblem::TooLarge { what: kind.name(), limit: kind.limit() }));
    }
    text(path, bytes)
}

fn text(path: &Path, bytes: Vec<u8>) -> Result<String, FileError> {
    String::from_utf8(bytes)
        .map_err(|e| FileError::new(path, FileProblem::NotText { at: e.utf8_error().valid_up_to() }))
}

/// The lines of a file read one at a time, each at most [`FileKind::JsonLine`]'s limit
/// (a line over it is an error naming the file and its line number, and ends the
/// reading). Line numbers count from 1; the newline is not included.
pub struct Lines<R> {
    reader: R,
    path: PathBuf,
    line: usize,
    done: bool,
}

impl Lines<std::io::BufReader<File>> {
    /// The lines of regular file `path`.
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let (file, _) = open(path)?;
        Ok(Self::new(std::io::BufReader::with_capacity(1 << 16, file), path))
    }
}

impl<R: BufRead> Lines<R> {
    /// The lines of `reader`, named `path` in errors.
    pub fn new(reader: R, path: &Path) -> Self {
        Self { reader, path: path.to_path_buf(), line: 0, done: false }
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    /// A line's number and bytes.
    type Item = Result<(usize, Vec<u8>), FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let limit = FileKind::JsonLine.limit();
        let mut line = Vec::new();
        let read = (&mut self.reader).take(limit + 1).read_until(b'\n', &mut line);
        self.line += 1;
        match read {
            Ok(0) => {
                self.done = true;
                None
            }
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                } else if line.len() as u64 > limit {
                    self.done = true;
                    let problem = FileProblem::TooLarge { what: FileKind::JsonLine.name(), limit };
                    let path = PathBuf::from(format!("{}:{}", self.path.display(), self.line));
                    return Some(Err(FileError { path, problem }));
                }
                Some(Ok((self.line, line)))
            }
            Err(e) => {
                self.done = true;
                Some(Err(FileError::new(&self.path, e)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn devices_fifos_and_directories_are_refused_before_they_are_read() {
        let dir = tempfile::tempdir().unwrap();
        for (path, what) in [(Path::new("/dev/zero"), "character device"), (dir.path(), "directory")] {
            let err = read(path, FileKind::Prompt).unwrap_err();
            assert!(matches!(err.problem, FileProblem::NotRegular(w) if w == what), "{err}");
        }
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_to_string(&fifo, FileKind::Question).unwrap_err();
        assert!(err.to_string().contains("not a regular file (it is a FIFO)"), "{err}");
        // A link to a device is the device.
        let link = dir.path().join("link.j2");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(matches!(read(&link, FileKind::Prompt).unwrap_err().problem, FileProblem::NotRegular(_)));
    }

    #[test]
    fn a_file_over_its_limit_is_refused_naming_it_and_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'a'; FileKind::Spec.limit() as usize + 1]).unwrap();
        let err = read(&big, FileKind::Spec).unwrap_err().to_string();
        assert!(err.contains("big.toml") && err.contains("over the 1048576-byte limit for experiment specs"), "{err}");
        std::fs::write(&big, vec![b'a'; FileKind::Spec.limit() as usize]).unwrap();
        assert_eq!(read(&big, FileKind::Spec).unwrap().len() as u64, FileKind::Spec.limit());
        std::fs::write(&big, [b'a', 0xff, b'b']).unwrap();
        assert!(matches!(read_to_string(&big, FileKind::Spec).unwrap_err().problem, FileProblem::NotText { at: 1 }));
    }

    #[test]
    fn lines_are_numbered_and_a_line_over_the_cap_ends_the_reading() {
        let text = b"a\n\nbc\nlast";
        let lines: Vec<_> = Lines::new(&text[..], Path::new("f")).map(Result::unwrap).collect();
        assert_eq!(lines, vec![(1, b"a".to_vec()), (2, vec![]), (3, b"bc".to_vec()), (4, b"last".to_vec())]);
        let limit = FileKind::JsonLine.limit() as usize;
        let mut long = b"ok\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', limit + 10));
        long.extend_from_slice(b"\nafter\n");
        let got: Vec<_> = Lines::new(std::io::Cursor::new(long), Path::new("f.jsonl")).collect();
        assert_eq!(got.len(), 2);
        let err = got[1].as_ref().unwrap_err().to_string();
        assert!(err.starts_with("f.jsonl:2: over the"), "{err}");
    }
}
