//! Writing an output file without losing what was there: `-` is standard output, a
//! regular file (or a new one) is written beside it and renamed over it only once
//! complete, and anything else (a device, a pipe) is written in place, never replaced.
//! A symbolic link is followed, so the link stays a link.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

/// Write what `fill` writes to `path` (see the module). On an error nothing partial is
/// left behind where the file was to be, and a file already there is unchanged.
pub fn write_output<T>(path: &Path, fill: impl FnOnce(&mut dyn Write) -> io::Result<T>) -> io::Result<T> {
    let mut output = Output::create(path)?;
    let out = fill(&mut output)?;
    output.commit()?;
    Ok(out)
}

/// An output being written (see the module), for writers that cannot hand over one
/// closure (rows streamed as a batch verifies them): [`Output::commit`] puts it in
/// place; dropped uncommitted, a regular file's partial copy is removed and the file
/// already there is unchanged.
pub struct Output {
    writer: BufWriter<Box<dyn Write + Send>>,
    /// The partial file and the file it replaces, for a regular file.
    rename: Option<(PathBuf, PathBuf)>,
}

impl Output {
    /// Start writing to `path`: `-` standard output, a device or pipe in place, a
    /// regular file through a partial copy beside it.
    pub fn create(path: &Path) -> io::Result<Self> {
        let boxed = |w: Box<dyn Write + Send>| BufWriter::with_capacity(1 << 16, w);
        if path.as_os_str() == "-" {
            return Ok(Self { writer: boxed(Box::new(io::stdout())), rename: None });
        }
        let target: PathBuf = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        match std::fs::metadata(&target) {
            // A device or a pipe: write into it; renaming would replace it with a file.
            Ok(meta) if !meta.is_file() && !meta.is_dir() => {
                Ok(Self { writer: boxed(Box::new(OpenOptions::new().write(true).open(&target)?)), rename: None })
            }
            Ok(meta) if meta.is_dir() => Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory")),
            _ => {
                let mut name = target.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(".partial");
                let tmp = target.with_file_name(name);
                let file = File::create(&tmp)?;
                Ok(Self { writer: boxed(Box::new(file)), rename: Some((tmp, target)) })
            }
        }
    }

    /// Flush, and put a regular file in place (synced first).
    pub fn commit(mut self) -> io::Result<()> {
        self.writer.flush()?;
        if let Some((tmp, target)) = self.rename.take() {
            let synced = File::open(&tmp).and_then(|f| f.sync_all()).and_then(|()| std::fs::rename(&tmp, &target));
            if synced.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            synced?;
        }
        Ok(())
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some((tmp, _)) = self.rename.take() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("report.html");
        std::fs::write(&file, "old").unwrap();
        let err = write_output(&file, |w| {
            w.write_all(b"half")?;
            Err::<(), _>(io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no .partial left");
        write_output(&file, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
    }

    #[cfg(unix)]
    #[test]
    fn links_stay_links_and_devices_are_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.jsonl");
        let link = dir.path().join("link.jsonl");
        std::fs::write(&real, "old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_output(&link, |w| w.write_all(b"new")).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        // /dev/null stays a device.
        write_output(Path::new("/dev/null"), |w| w.write_all(b"x")).unwrap();
        assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
    }
}
