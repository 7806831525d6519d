//! The ledger's error type.

use std::path::PathBuf;
use std::sync::Arc;

use crate::canonical::CanonicalError;
use crate::digest::Digest;

/// Everything a ledger operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The ledger directory (or its blob directory) could not be created.
    #[error("could not create the ledger directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The lock file could not be created or locked.
    #[error("could not take the writer lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another handle (in this process or another) has the ledger open for writing.
    #[error("the ledger at {path} is already open for writing elsewhere")]
    Locked {
        /// The ledger directory.
        path: PathBuf,
    },
    /// There is no ledger database where one was expected (read-only open).
    #[error("there is no ledger database at {path}")]
    NotFound {
        /// The database file.
        path: PathBuf,
    },
    /// SQLite could not open or set up the database (missing, unreadable, not a database…).
    #[error("could not open the ledger database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// The schema migrations could not be applied.
    #[error("could not apply the ledger schema migrations to {path}")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The ledger was opened with [`crate::Ledger::open_readonly`].
    #[error("the ledger was opened read-only")]
    ReadOnly,
    /// The ledger has been closed.
    #[error("the ledger has been closed")]
    Closed,
    /// The draft cannot be appended as it is.
    #[error("the draft cannot be appended: {reason}")]
    InvalidDraft {
        /// What is wrong with it.
        reason: String,
    },
    /// The draft's body has no canonical encoding.
    #[error("the draft has no canonical encoding")]
    Canonical(#[source] CanonicalError),
    /// The draft references a screenshot that is not in the blob store.
    #[error("{field} refers to blob {hash}, which is not in the blob store")]
    MissingBlob {
        /// `frame_before` or `frame_after`.
        field: &'static str,
        /// The referenced blob.
        hash: Digest,
    },
    /// The batch the append belonged to could not be committed; none of it was written.
    #[error("could not commit the batch of entries")]
    Commit(#[source] Arc<sqlx::Error>),
    /// A commit failed earlier and the chain head could not be re-read from the database since.
    #[error("the chain head could not be re-read after a failed commit: {reason}")]
    HeadUnavailable {
        /// Why the head could not be read.
        reason: String,
    },
    /// Reading entries from the database failed.
    #[error("could not read entries from the ledger database")]
    Read(#[source] sqlx::Error),
    /// Walking the entries table (verify, export) failed.
    #[error("could not read entries from the ledger database {path}")]
    Scan {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored entry is damaged (run verify for the full picture).
    #[error("entry {seq} in the ledger database is damaged: {reason}")]
    CorruptEntry {
        /// The entry.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A blob is not in the blob store.
    #[error("blob {hash} is not in the blob store")]
    BlobNotFound {
        /// The blob.
        hash: Digest,
    },
    /// A blob's content does not hash to its name.
    #[error("blob {hash} content does not match its hash")]
    BlobCorrupt {
        /// The blob.
        hash: Digest,
    },
    /// A blob file could not be written.
    #[error("could not write blob file {path}")]
    BlobWrite {
        /// The file or directory being written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A blob file could not be read.
    #[error("could not read blob file {path}")]
    BlobRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A background task doing blocking file I/O failed.
    #[error("a background file task failed")]
    Background(#[source] tokio::task::JoinError),
    /// A thread walking part of the chain panicked.
    #[error("a verification thread failed unexpectedly")]
    WalkerPanicked,
    /// Writing the export failed.
    #[error("could not write the export")]
    ExportWrite(#[source] std::io::Error),
    /// Reading an export failed (an I/O error, not a damaged line).
    #[error("could not read the export")]
    ExportRead(#[source] std::io::Error),
}

impl LedgerError {
    /// Maps a read failure, turning a closed pool into [`LedgerError::Closed`].
    pub(crate) fn read(err: sqlx::Error) -> LedgerError {
        match err {
            sqlx::Error::PoolClosed => LedgerError::Closed,
            other => LedgerError::Read(other),
        }
    }
}
