//! Whole-chain reads for verify and export, on a blocking thread.
//!
//! sqlx hands every row from its worker thread to the async task through a channel, which costs
//! two context switches a row: a walk of a million entries spent most of its time there. These
//! walks therefore read through rusqlite, over the same bundled SQLite library: one read-only
//! connection, one statement (so one consistent snapshot, even while appends continue), column
//! bytes borrowed without copying. Everything else goes through sqlx.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::error::LedgerError;

/// Every column of `entries`, in seq order. Column indexes below follow this order.
pub(crate) const ALL_ENTRIES: &str =
    "SELECT seq, ts_ms, sandbox, kind, body, prev, hash FROM entries ORDER BY seq";
/// [`ALL_ENTRIES`] with `?1 <= seq <= ?2`.
pub(crate) const ENTRIES_BETWEEN: &str =
    "SELECT seq, ts_ms, sandbox, kind, body, prev, hash FROM entries WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq";
pub(crate) const SEQ: usize = 0;
pub(crate) const TS_MS: usize = 1;
pub(crate) const SANDBOX: usize = 2;
pub(crate) const KIND: usize = 3;
pub(crate) const BODY: usize = 4;
pub(crate) const PREV: usize = 5;
pub(crate) const HASH: usize = 6;

/// Opens a read-only connection for a walk.
pub(crate) fn open(db: &Path) -> Result<Connection, LedgerError> {
    let err = |source| LedgerError::Scan {
        path: db.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
    Ok(conn)
}

/// Maps a failure while walking `db`.
pub(crate) fn error(db: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |source| LedgerError::Scan {
        path: db.to_path_buf(),
        source,
    }
}

/// The column's value, if it is a positive integer.
pub(crate) fn seq(row: &rusqlite::Row<'_>) -> Option<u64> {
    row.get_ref(SEQ)
        .ok()?
        .as_i64()
        .ok()
        .and_then(|s| u64::try_from(s).ok())
}

/// The column's value, if it is an integer.
pub(crate) fn int(row: &rusqlite::Row<'_>, i: usize) -> Result<i64, ()> {
    row.get_ref(i).map_err(|_| ())?.as_i64().map_err(|_| ())
}

/// The column's bytes, if it is text or a blob (a `NULL` is `None`).
pub(crate) fn opt_bytes<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<Option<&'r [u8]>, ()> {
    match row.get_ref(i).map_err(|_| ())? {
        ValueRef::Null => Ok(None),
        ValueRef::Text(b) | ValueRef::Blob(b) => Ok(Some(b)),
        ValueRef::Integer(_) | ValueRef::Real(_) => Err(()),
    }
}

/// Why a column that must hold bytes does not give them.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ColumnError {
    /// The column holds another type.
    #[error("column {column} holds {held}, not text or bytes")]
    Type {
        /// The column.
        column: &'static str,
        /// What it holds.
        held: rusqlite::types::Type,
    },
    /// SQLite could not read the column.
    #[error("column {column} cannot be read")]
    Read {
        /// The column.
        column: &'static str,
        /// Cause.
        #[source]
        source: rusqlite::Error,
    },
}

/// The column's bytes; the error names the column and what it holds instead.
pub(crate) fn bytes<'r>(
    row: &'r rusqlite::Row<'_>,
    i: usize,
    column: &'static str,
) -> Result<&'r [u8], ColumnError> {
    match row.get_ref(i) {
        Ok(ValueRef::Text(b) | ValueRef::Blob(b)) => Ok(b),
        Ok(other) => Err(ColumnError::Type {
            column,
            held: other.data_type(),
        }),
        Err(source) => Err(ColumnError::Read { column, source }),
    }
}
