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
    if path.as_os_str() == "-" {
        let stdout = io::stdout();
        let mut lock = stdout.lock();
        let out = fill(&mut lock)?;
        lock.flush()?;
        return Ok(out);
    }
    let target: PathBuf = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    match std::fs::metadata(&target) {
        Ok(meta) if !meta.is_file() && !meta.is_dir() => {
            // A device or a pipe: write into it; renaming would replace it with a file.
            let mut writer = BufWriter::new(OpenOptions::new().write(true).open(&target)?);
            let out = fill(&mut writer)?;
            writer.flush()?;
            Ok(out)
        }
        Ok(meta) if meta.is_dir() => Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory")),
        _ => {
            let mut name = target.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            name.push(".partial");
            let tmp = target.with_file_name(name);
            let result = (|| {
                let mut writer = BufWriter::new(File::create(&tmp)?);
                let out = fill(&mut writer)?;
                writer.flush()?;
                writer.get_ref().sync_all()?;
                drop(writer);
                std::fs::rename(&tmp, &target)?;
                Ok(out)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
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
