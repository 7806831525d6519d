//! Files into and out of a sandbox, on the record: an upload is spooled beside the ledger while it
//! is hashed (bounded by [`MAX_UPLOAD`]), written into the guest atomically over the guest channel
//! (with its flow control, so the screen and approvals keep moving), and kept as a blob; a download
//! streams out of the guest and is recorded when it ends, or when it breaks off. Every transfer is a
//! [`FileTransfer`] record naming direction, path, size, SHA-256 and who (data leaving a sandbox is
//! egress).

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use airlock_ledger::{Actor, Digest};
use airlock_protocol::{validate_guest_path, Content, InvalidFileRequest, PutFile, MAX_LIST_ENTRIES};
use airlock_records::{Direction, FileTransfer, Record, TransferContent};
use airlock_sandbox::{Download, TransferError};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use ts_rs::TS;

use crate::{CommandError, Supervisor};

/// Largest upload: 1 GiB (uploads are kept whole among the ledger's blobs).
pub const MAX_UPLOAD: u64 = 1 << 30;

/// Uploads spooling or on their way into a sandbox at once, over all sandboxes; one more is
/// refused until one ends (each may spool up to [`MAX_UPLOAD`] beside the ledger).
pub const MAX_UPLOADS_AT_ONCE: usize = 4;

/// Space an upload leaves free on the ledger's filesystem: the record of everything else comes
/// before a file.
pub const SPOOL_RESERVE: u64 = 512 << 20;

/// How often an upload of undeclared length looks at the free space again.
const SPACE_CHECK_EVERY: u64 = 64 << 20;

/// A file written into a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct FileWritten {
    /// The sandbox.
    pub sandbox: String,
    /// Where it went.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex (the guest's own hash of what it wrote, equal to the host's).
    pub sha256: String,
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// A device, fifo or socket.
    Other,
}

/// One entry of a sandbox directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Its name (a name that is not UTF-8 shows U+FFFD for each bad byte).
    pub name: String,
    /// What it is.
    pub kind: FileKind,
    /// Bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modified, seconds since the epoch.
    pub mtime_s: i64,
}

/// A sandbox directory's entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct FileListing {
    /// The directory.
    pub path: String,
    /// Its entries, by name.
    pub entries: Vec<FileEntry>,
    /// It holds more than were listed.
    pub truncated: bool,
}

/// Why a transfer did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The path breaks the rules (relative, `..`, NUL, too long, a system tree).
    #[error("{path:?} cannot be transferred")]
    Path {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: InvalidFileRequest,
    },
    /// The upload is larger than the limit.
    #[error("the upload is {size} bytes; uploads are at most {max} bytes (1 GiB)", max = MAX_UPLOAD)]
    TooLarge {
        /// Its size (so far, when it arrived without a length).
        size: u64,
    },
    /// [`MAX_UPLOADS_AT_ONCE`] uploads are already under way.
    #[error("{max} uploads are already under way; try again when one has ended", max = MAX_UPLOADS_AT_ONCE)]
    Busy,
    /// The upload would leave less than [`SPOOL_RESERVE`] free beside the ledger.
    #[error(
        "the upload needs {needed} bytes beside the ledger in {} and {reserve} more are kept \
         free for the record, but only {available} are free; nothing was written",
        .path.display(),
        reserve = SPOOL_RESERVE
    )]
    NoSpace {
        /// The ledger's spool folder.
        path: PathBuf,
        /// Bytes the upload needs (so far, when it arrived without a length).
        needed: u64,
        /// Bytes free there.
        available: u64,
    },
    /// The upload's body ended before its declared length.
    #[error("the upload ended after {got} of {declared} bytes; nothing was written")]
    Short {
        /// Declared.
        declared: u64,
        /// Received.
        got: u64,
    },
    /// Reading the upload failed (the client went away); nothing was written.
    #[error("the upload could not be read; nothing was written")]
    Body(#[source] std::io::Error),
    /// The spool beside the ledger failed.
    #[error("cannot spool the upload in {path}")]
    Spool {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The guest refused or failed; nothing was left half-written.
    #[error("the sandbox could not transfer {path:?}")]
    Transfer {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: TransferError,
    },
    /// The guest's hash of what it wrote differs from the host's (what it wrote stays, recorded
    /// with this error).
    #[error("the sandbox reports SHA-256 {guest} for what it wrote to {path:?}, not the {host} sent")]
    Mismatch {
        /// The path.
        path: String,
        /// The guest's.
        guest: String,
        /// The host's.
        host: String,
    },
    /// The sandbox, the ledger or the record failed.
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl FileError {
    /// Whether the caller's request was at fault (400/404/413), not the host.
    pub fn is_callers(&self) -> bool {
        match self {
            FileError::Path { .. }
            | FileError::TooLarge { .. }
            | FileError::Short { .. }
            | FileError::Body(_)
            | FileError::Transfer {
                source: TransferError::Refused(_) | TransferError::Invalid(_),
                ..
            } => true,
            FileError::Transfer { .. }
            | FileError::Busy
            | FileError::NoSpace { .. }
            | FileError::Spool { .. }
            | FileError::Mismatch { .. }
            | FileError::Command(_) => false,
        }
    }
}

fn check_path(path: &str) -> Result<(), FileError> {
    validate_guest_path(path).map_err(|source| FileError::Path {
        path: path.to_string(),
        source,
    })
}

/// Permission bits written in octal as chmod takes them (`644`, `0644`, `0o644`), at most
/// `0o7777`; `None` for anything else (a decimal 420 is not read as 0o644).
pub fn parse_mode(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|v| !digits.is_empty() && *v <= 0o7777)
}

/// Who moves a file and how they asked (`api`, `cli`, `console`), for the record.
#[derive(Debug, Clone, Copy)]
pub struct Mover<'a> {
    /// Who.
    pub by: &'a Actor,
    /// How.
    pub via: &'a str,
}

/// What a download gives: its content (a file with its size, or a folder's archive) and the bytes.
pub struct Outgoing {
    /// File or folder.
    pub content: Content,
    /// The bytes; the transfer is recorded when they end (or break off).
    pub body: RecordedDownload,
}

impl Supervisor {
    /// Lists a sandbox directory (at most [`MAX_LIST_ENTRIES`] entries).
    #[tracing::instrument(skip(self), fields(sandbox = %id))]
    pub async fn list_files(&self, id: &str, path: &str) -> Result<FileListing, FileError> {
        check_path(path)?;
        let session = self.session(id).await?;
        let listing = session
            .guest
            .list_dir(path, MAX_LIST_ENTRIES)
            .await
            .map_err(|source| FileError::Transfer {
                path: path.to_string(),
                source,
            })?;
        Ok(listing_of(path, listing))
    }

    /// Writes `body` (of `declared` bytes when known) to `path` in sandbox `id` with `mode`,
    /// creating missing parents; spooled and hashed first (at most [`MAX_UPLOAD`]), then written
    /// atomically in the guest, kept as a blob and recorded. A failure leaves nothing behind in
    /// the sandbox; one in the sandbox is recorded with its error, while a request refused before
    /// any byte reached the sandbox (a bad path, over the limit, a body that broke off) is only
    /// answered with the error.
    #[tracing::instrument(skip(self, body, who), fields(sandbox = %id, via = who.via))]
    pub async fn upload(
        &self,
        id: &str,
        path: &str,
        mode: u32,
        body: impl AsyncRead + Unpin + Send,
        declared: Option<u64>,
        who: Mover<'_>,
    ) -> Result<FileWritten, FileError> {
        let Mover { by, via } = who;
        check_path(path)?;
        if let Some(size) = declared.filter(|s| *s > MAX_UPLOAD) {
            return Err(FileError::TooLarge { size });
        }
        let session = self.session(id).await?;
        let permit = self
            .inner
            .uploads
            .clone()
            .try_acquire_owned()
            .map_err(|_| FileError::Busy)?;
        let spool = self.ledger().spool_dir().map_err(CommandError::Ledger)?;
        let (file, size, hash) = spool_upload(&spool, body, declared).await?;
        let request = PutFile {
            path: path.to_string(),
            mode,
            size,
            create_parents: true,
        };
        if let Err(source) = request.validate() {
            return Err(FileError::Path {
                path: path.to_string(),
                source,
            });
        }
        // From here on the transfer runs to its end and onto the ledger even when the caller goes
        // away (a client that disconnects after its last byte): what reaches the sandbox is
        // always recorded.
        let job = Delivery {
            sup: self.clone(),
            session,
            id: id.to_string(),
            request,
            file,
            hash,
            by: by.clone(),
            via: via.to_string(),
            _permit: permit,
        };
        tokio::spawn(job.run())
            .await
            .map_err(|e| FileError::Command(CommandError::Task(e)))?
    }

    /// Reads `path` out of sandbox `id`: a file, or a folder as a tar archive. Recorded when the
    /// bytes end or break off.
    #[tracing::instrument(skip(self, who), fields(sandbox = %id, via = who.via))]
    pub async fn download(&self, id: &str, path: &str, who: Mover<'_>) -> Result<Outgoing, FileError> {
        let Mover { by, via } = who;
        check_path(path)?;
        let session = self.session(id).await?;
        let download = match session.guest.get_path(path).await {
            Ok(d) => d,
            Err(source) => {
                let e = FileError::Transfer {
                    path: path.to_string(),
                    source,
                };
                let record = FileTransfer {
                    direction: Direction::Out,
                    path: path.to_string(),
                    content: TransferContent::File,
                    size: 0,
                    sha256: None,
                    blob: None,
                    via: via.to_string(),
                    error: Some(crate::chain(&e)),
                };
                self.record(Some(id), by.clone(), Record::FileTransfer(record))
                    .await?;
                return Err(e);
            }
        };
        let content = download.content();
        Ok(Outgoing {
            content,
            body: RecordedDownload {
                inner: download,
                sup: self.clone(),
                sandbox: id.to_string(),
                path: path.to_string(),
                by: by.clone(),
                via: via.to_string(),
                sent: 0,
                recorded: false,
            },
        })
    }
}

/// A guest listing as operators and agents see it: entries by name.
pub(crate) fn listing_of(path: &str, listing: airlock_protocol::Listing) -> FileListing {
    let mut entries: Vec<FileEntry> = listing
        .entries
        .into_iter()
        .map(|e| FileEntry {
            name: e.name,
            kind: match e.kind {
                airlock_protocol::EntryKind::File => FileKind::File,
                airlock_protocol::EntryKind::Dir => FileKind::Dir,
                airlock_protocol::EntryKind::Symlink => FileKind::Symlink,
                airlock_protocol::EntryKind::Other => FileKind::Other,
            },
            size: e.size,
            mode: e.mode,
            mtime_s: e.mtime,
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    FileListing {
        path: path.to_string(),
        entries,
        truncated: listing.truncated,
    }
}

/// A spooled upload on its way into the sandbox and onto the ledger (run as a task of its own).
struct Delivery {
    sup: Supervisor,
    session: crate::Session,
    id: String,
    request: PutFile,
    file: tempfile::NamedTempFile,
    hash: Digest,
    by: Actor,
    via: String,
    /// Held until the delivery ends ([`MAX_UPLOADS_AT_ONCE`]).
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Delivery {
    async fn run(self) -> Result<FileWritten, FileError> {
        let Delivery {
            sup,
            session,
            id,
            request,
            file,
            hash,
            by,
            via,
            _permit,
        } = self;
        let (path, size) = (request.path.clone(), request.size);
        let src = tokio::fs::File::open(file.path())
            .await
            .map_err(|source| FileError::Spool {
                path: file.path().to_path_buf(),
                source,
            })?;
        let outcome = match session.guest.put_file(request, src).await {
            Ok(d) if d.sha256 == *hash.as_bytes() && d.size == size => Ok(()),
            Ok(d) => Err(FileError::Mismatch {
                path: path.clone(),
                guest: d.sha256_hex(),
                host: hash.to_hex(),
            }),
            Err(source) => Err(FileError::Transfer {
                path: path.clone(),
                source,
            }),
        };
        let mut record = FileTransfer {
            direction: Direction::In,
            path: path.clone(),
            content: TransferContent::File,
            size,
            sha256: Some(hash.to_hex()),
            blob: None,
            via,
            error: None,
        };
        if let Err(e) = outcome {
            record.error = Some(crate::chain(&e));
            sup.record(Some(&id), by, Record::FileTransfer(record)).await?;
            return Err(e);
        }
        // Kept: the temporary file becomes the blob (it is not deleted on drop any more).
        let (_, kept) = file.keep().map_err(|e| FileError::Spool {
            path: e.file.path().to_path_buf(),
            source: e.error,
        })?;
        sup.ledger()
            .adopt_blob(kept, hash)
            .await
            .map_err(CommandError::Ledger)?;
        record.blob = Some(hash.to_hex());
        sup.record(Some(&id), by, Record::FileTransfer(record)).await?;
        tracing::info!(size, sha256 = %hash, "file written into the sandbox");
        Ok(FileWritten {
            sandbox: id,
            path,
            size,
            sha256: hash.to_hex(),
        })
    }
}

/// Bytes free to an unprivileged writer on the filesystem holding `dir`.
fn free_space(dir: &std::path::Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Refuses an upload that would take the ledger's filesystem below [`SPOOL_RESERVE`] free, once it
/// holds `needed` bytes.
fn check_space(dir: &std::path::Path, needed: u64) -> Result<(), FileError> {
    let available = free_space(dir).map_err(|source| FileError::Spool {
        path: dir.to_path_buf(),
        source,
    })?;
    if available < needed.saturating_add(SPOOL_RESERVE) {
        return Err(FileError::NoSpace {
            path: dir.to_path_buf(),
            needed,
            available,
        });
    }
    Ok(())
}

/// Streams the body into a spool file, hashing it; refuses more than [`MAX_UPLOAD`], a body that
/// does not match its declared length, or one the ledger's filesystem has no room for (checked
/// for the declared length first, and every [`SPACE_CHECK_EVERY`] bytes of a body without one).
/// The file is removed unless kept.
async fn spool_upload(
    dir: &std::path::Path,
    mut body: impl AsyncRead + Unpin + Send,
    declared: Option<u64>,
) -> Result<(tempfile::NamedTempFile, u64, Digest), FileError> {
    use sha2::Digest as _;
    check_space(dir, declared.unwrap_or(0))?;
    let file = tempfile::Builder::new()
        .prefix("upload.")
        .tempfile_in(dir)
        .map_err(|source| FileError::Spool {
            path: dir.to_path_buf(),
            source,
        })?;
    let spool_err = |source| FileError::Spool {
        path: file.path().to_path_buf(),
        source,
    };
    let mut out = tokio::fs::File::from_std(file.reopen().map_err(spool_err)?);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = body.read(&mut buf).await.map_err(FileError::Body)?;
        if n == 0 {
            break;
        }
        let before = size;
        size += n as u64;
        if size > MAX_UPLOAD || declared.is_some_and(|d| size > d) {
            return Err(FileError::TooLarge { size });
        }
        if declared.is_none() && before / SPACE_CHECK_EVERY != size / SPACE_CHECK_EVERY {
            // What is already spooled is no longer free: only the next stretch must fit.
            check_space(dir, SPACE_CHECK_EVERY)?;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).await.map_err(spool_err)?;
    }
    if let Some(d) = declared.filter(|d| *d != size) {
        return Err(FileError::Short {
            declared: d,
            got: size,
        });
    }
    out.flush().await.map_err(spool_err)?;
    out.sync_all().await.map_err(spool_err)?;
    let hash = Digest(hasher.finalize().into());
    Ok((file, size, hash))
}

/// A download's bytes; the transfer goes on the ledger when they end, or when the reader drops
/// them before the end (a client that went away), with what was sent.
pub struct RecordedDownload {
    inner: Download,
    sup: Supervisor,
    sandbox: String,
    path: String,
    by: Actor,
    via: String,
    sent: u64,
    recorded: bool,
}

impl RecordedDownload {
    fn record(&mut self, error: Option<String>) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let digest = self.inner.digest();
        let record = FileTransfer {
            direction: Direction::Out,
            path: self.path.clone(),
            content: match self.inner.content() {
                Content::File { .. } => TransferContent::File,
                Content::DirectoryTar { .. } => TransferContent::FolderArchive,
            },
            size: digest.map(|d| d.size).unwrap_or(self.sent),
            sha256: digest.map(|d| d.sha256_hex()),
            blob: None,
            via: self.via.clone(),
            error,
        };
        let (sup, sandbox, by) = (self.sup.clone(), self.sandbox.clone(), self.by.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = sup.record(Some(&sandbox), by, Record::FileTransfer(record)).await {
                    tracing::error!(error = %crate::chain(&e), "a download could not be recorded");
                }
            });
        }
    }
}

impl AsyncRead for RecordedDownload {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                self.sent += n as u64;
                if n == 0 {
                    self.record(None);
                }
            }
            Poll::Ready(Err(e)) => {
                let why = format!("the download broke off: {e}");
                self.record(Some(why));
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for RecordedDownload {
    fn drop(&mut self) {
        if !self.recorded {
            let sent = self.sent;
            self.record(Some(format!("the reader went away after {sent} bytes")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_upload_the_disk_has_no_room_for_is_refused_before_anything_is_spooled() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let free = free_space(dir.path()).expect("its free space");
        let e = spool_upload(dir.path(), &b""[..], Some(free))
            .await
            .expect_err("the reserve cannot be kept");
        assert!(
            matches!(e, FileError::NoSpace { needed, .. } if needed == free),
            "{e}"
        );
        assert!(e.to_string().contains(&dir.path().display().to_string()), "{e}");
        let left = std::fs::read_dir(dir.path()).expect("readable").count();
        assert_eq!(left, 0, "nothing was spooled");
    }
}
