//! Atomic writes: every output of the host is written to a temporary name in the destination's
//! own directory, flushed to disk, and renamed into place, so a crash or an error never leaves
//! a half-written weight file, checkpoint, image or dataset where a finished one is expected.
//! On error the destination is untouched and the temporary is removed.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::HostError;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The destination's directory ("." for a bare file name) and a fresh hidden temporary path
/// beside it: `.NAME.tmp.PID.N`.
fn temp_sibling(dest: &Path) -> Result<(PathBuf, PathBuf), HostError> {
    let name = dest
        .file_name()
        .ok_or_else(|| HostError::unwritable(dest, "the path has no file name"))?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    Ok((parent.clone(), parent.join(tmp)))
}

/// Why the parent directory cannot hold the output, in words, or the raw error.
fn explain(parent: &Path, err: &io::Error) -> String {
    if parent.is_file() {
        format!("{} is a file, not a directory", parent.display())
    } else if !parent.exists() {
        format!("the directory {} does not exist", parent.display())
    } else {
        err.to_string()
    }
}

/// Best-effort fsync of a directory, so that a rename inside it is durable.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `dest` atomically: `write` fills a buffered temporary file beside it, which is then
/// flushed, fsynced and renamed over `dest`. On any error the temporary is removed and `dest`
/// keeps its old contents (or stays absent).
pub fn write_file_atomic<F>(dest: &Path, write: F) -> Result<(), HostError>
where
    F: FnOnce(&mut BufWriter<File>) -> io::Result<()>,
{
    let (parent, tmp) = temp_sibling(dest)?;
    if dest.is_dir() {
        return Err(HostError::unwritable(
            dest,
            "a directory exists at this path",
        ));
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| HostError::unwritable(dest, explain(&parent, &e)))?;
    let result = (|| {
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, dest)
    })();
    match result {
        Ok(()) => {
            sync_dir(&parent);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(HostError::unwritable(dest, e))
        }
    }
}

/// Writes `bytes` to `dest` atomically (see [`write_file_atomic`]).
pub fn write_bytes_atomic(dest: &Path, bytes: &[u8]) -> Result<(), HostError> {
    write_file_atomic(dest, |w| w.write_all(bytes))
}

/// Creates the directory `dest` atomically: `fill` writes the contents into a temporary
/// directory beside it, which is renamed to `dest` only if `fill` succeeds. `dest` must not
/// exist yet (an existing dataset is never overwritten). On error the temporary directory is
/// removed and `fill`'s error is returned.
pub fn write_dir_atomic<F>(dest: &Path, fill: F) -> Result<(), HostError>
where
    F: FnOnce(&Path) -> Result<(), HostError>,
{
    let (parent, tmp) = temp_sibling(dest)?;
    if fs::symlink_metadata(dest).is_ok() {
        return Err(HostError::unwritable(
            dest,
            "it already exists; remove it or choose another path",
        ));
    }
    fs::create_dir(&tmp).map_err(|e| HostError::unwritable(dest, explain(&parent, &e)))?;
    let result = fill(&tmp).and_then(|()| {
        sync_dir(&tmp);
        fs::rename(&tmp, dest).map_err(|e| HostError::unwritable(dest, e))
    });
    match result {
        Ok(()) => {
            sync_dir(&parent);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "ambient-atomic-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn failed_write_keeps_old_contents_and_removes_temp() {
        let d = scratch("fail");
        let dest = d.join("out.bin");
        fs::write(&dest, b"old").unwrap();
        let err = write_file_atomic(&dest, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("encoder failed"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("out.bin"), "{err}");
        assert!(err.to_string().contains("encoder failed"), "{err}");
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(entries(&d), vec!["out.bin".to_string()]);
        write_bytes_atomic(&dest, b"new").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(entries(&d), vec!["out.bin".to_string()]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn failed_dir_fill_leaves_nothing() {
        let d = scratch("dir");
        let dest = d.join("set");
        let err = write_dir_atomic(&dest, |tmp| {
            fs::write(tmp.join("a"), b"x").unwrap();
            Err(HostError::invalid(Path::new("a"), "boom"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("boom"));
        assert!(entries(&d).is_empty());
        write_dir_atomic(&dest, |tmp| write_bytes_atomic(&tmp.join("a"), b"x")).unwrap();
        assert_eq!(entries(&dest), vec!["a".to_string()]);
        // An existing directory is never replaced.
        let err = write_dir_atomic(&dest, |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        fs::remove_dir_all(&d).unwrap();
    }
}
