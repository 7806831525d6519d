//! Content-addressed blob files beside the database: `blobs/ab/cdef…` (the first two hex characters
//! name the directory, the other 62 the file). Blocking; the async ledger calls these on the
//! blocking pool.

use std::fs::{self, File};
use std::io::{ErrorKind, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::Digest;
use crate::error::LedgerError;

/// Prefix of in-flight files; left-overs from a crash are removed when a writer opens the ledger.
const TMP_PREFIX: &str = ".tmp.";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What a blob check found.
#[derive(Debug)]
pub(crate) enum BlobState {
    Intact,
    Missing,
    Mismatch,
    Unreadable(std::io::Error),
}

/// The blob directory.
#[derive(Debug, Clone)]
pub(crate) struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    pub fn new(dir: PathBuf) -> BlobStore {
        BlobStore { dir }
    }

    /// Where the blob with this hash lives.
    pub fn path(&self, hash: &Digest) -> PathBuf {
        let hex = hash.to_hex();
        let (head, tail) = hex.split_at(2);
        self.dir.join(head).join(tail)
    }

    /// Stores `bytes` under their SHA-256 and returns it. Durable when it returns: the file is
    /// written to a temporary name, fsynced, renamed into place and the directory fsynced.
    /// Storing the same content again is a no-op.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, LedgerError> {
        let hash = Digest::of(bytes);
        let path = self.path(&hash);
        if let Ok(meta) = fs::metadata(&path) {
            if meta.is_file() && meta.len() == bytes.len() as u64 {
                return Ok(hash);
            }
        }
        let parent = path.parent().unwrap_or(&self.dir).to_path_buf();
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LedgerError::BlobWrite { path, source }
        };
        match fs::create_dir(&parent) {
            Ok(()) => sync_dir(&self.dir).map_err(write_err(&self.dir))?,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(write_err(&parent)(e)),
        }
        let tmp = parent.join(format!(
            "{TMP_PREFIX}{}.{}.{}",
            &hash.to_hex()[2..],
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = File::create_new(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(write_err(&tmp)(e));
        }
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(write_err(&path)(e));
        }
        sync_dir(&parent).map_err(write_err(&parent))?;
        Ok(hash)
    }

    /// Reads a blob and checks that its content hashes to its name.
    pub fn get(&self, hash: &Digest) -> Result<Vec<u8>, LedgerError> {
        let path = self.path(hash);
        match fs::read(&path) {
            Ok(bytes) if Digest::of(&bytes) == *hash => Ok(bytes),
            Ok(_) => Err(LedgerError::BlobCorrupt { hash: *hash }),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(LedgerError::BlobNotFound { hash: *hash }),
            Err(source) => Err(LedgerError::BlobRead { path, source }),
        }
    }

    /// Opens a blob to be read in pieces, after checking in pieces that its content still hashes
    /// to its name; the file is at its start.
    pub fn open(&self, hash: &Digest) -> Result<File, LedgerError> {
        let path = self.path(hash);
        let read_err = |source: std::io::Error| match source.kind() {
            ErrorKind::NotFound => LedgerError::BlobNotFound { hash: *hash },
            _ => LedgerError::BlobRead {
                path: path.clone(),
                source,
            },
        };
        let mut file = File::open(&path).map_err(read_err)?;
        if Digest::of_reader(&mut file).map_err(read_err)? != *hash {
            return Err(LedgerError::BlobCorrupt { hash: *hash });
        }
        file.seek(SeekFrom::Start(0)).map_err(read_err)?;
        Ok(file)
    }

    /// Whether a blob with this hash is present (its content is not read).
    pub fn contains(&self, hash: &Digest) -> bool {
        fs::metadata(self.path(hash)).is_ok_and(|m| m.is_file())
    }

    /// Reads and hashes a blob for verification, in pieces (a kept upload may be large).
    pub fn check(&self, hash: &Digest) -> BlobState {
        match File::open(self.path(hash)).and_then(Digest::of_reader) {
            Ok(d) if d == *hash => BlobState::Intact,
            Ok(_) => BlobState::Mismatch,
            Err(e) if e.kind() == ErrorKind::NotFound => BlobState::Missing,
            Err(e) => BlobState::Unreadable(e),
        }
    }

    /// Takes `file`, whose content the caller hashed to `hash` while writing it, as that blob:
    /// it is fsynced and renamed into place (it must be on the blob directory's filesystem).
    /// When the blob is present already, `file` is removed.
    pub fn adopt(&self, file: &Path, hash: &Digest) -> Result<(), LedgerError> {
        let path = self.path(hash);
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LedgerError::BlobWrite { path, source }
        };
        if fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            let _ = fs::remove_file(file);
            return Ok(());
        }
        let parent = path.parent().unwrap_or(&self.dir).to_path_buf();
        match fs::create_dir_all(&parent) {
            Ok(()) => {}
            Err(e) => return Err(write_err(&parent)(e)),
        }
        File::open(file)
            .and_then(|f| f.sync_all())
            .map_err(write_err(file))?;
        fs::rename(file, &path).map_err(write_err(&path))?;
        sync_dir(&parent).map_err(write_err(&parent))?;
        Ok(())
    }

    /// Removes temporary files left by writes interrupted by a crash. Best effort.
    pub fn sweep_tmp(&self) {
        let Ok(dirs) = fs::read_dir(&self.dir) else { return };
        for sub in dirs.flatten() {
            let Ok(files) = fs::read_dir(sub.path()) else {
                continue;
            };
            for f in files.flatten() {
                if f.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    tracing::debug!(file = %f.path().display(), "removing an interrupted blob write");
                    let _ = fs::remove_file(f.path());
                }
            }
        }
    }
}

/// Makes a directory's entries (a new file name, a rename) durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_idempotent_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::new(tmp.path().join("blobs"));
        fs::create_dir(tmp.path().join("blobs")).unwrap();
        let h = store.put(b"hello").unwrap();
        assert_eq!(h, Digest::of(b"hello"));
        let hex = h.to_hex();
        assert!(tmp.path().join("blobs").join(&hex[..2]).join(&hex[2..]).is_file());
        assert_eq!(store.put(b"hello").unwrap(), h);
        assert_eq!(store.get(&h).unwrap(), b"hello");
        assert!(store.contains(&h));
        assert!(matches!(store.check(&h), BlobState::Intact));

        fs::write(store.path(&h), b"hellO").unwrap();
        assert!(matches!(store.get(&h), Err(LedgerError::BlobCorrupt { .. })));
        assert!(matches!(store.check(&h), BlobState::Mismatch));
        fs::remove_file(store.path(&h)).unwrap();
        assert!(matches!(store.get(&h), Err(LedgerError::BlobNotFound { .. })));
        assert!(matches!(store.check(&h), BlobState::Missing));
        assert!(!store.contains(&h));
    }

    #[test]
    fn sweep_removes_only_temporaries() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::new(tmp.path().to_path_buf());
        let h = store.put(b"x").unwrap();
        let stray = store.path(&h).with_file_name(".tmp.abc.1.2");
        fs::write(&stray, b"partial").unwrap();
        store.sweep_tmp();
        assert!(!stray.exists());
        assert!(store.contains(&h));
    }
}
