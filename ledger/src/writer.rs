//! The single writer task: owns the write connection, assigns seqs, chains hashes and group-commits.
//!
//! Callers send [`Command`]s over a channel. The task takes everything queued (up to
//! [`MAX_BATCH_ENTRIES`] entries) into one transaction, commits it, and only then acknowledges each
//! caller. If the commit fails every caller in the batch gets the error and the head is re-read
//! from the database, so in-memory state never runs ahead of what is durable.

use std::fs::File;
use std::sync::{Arc, OnceLock};

use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::chain::entry_hash;
use crate::digest::Digest;
use crate::entry::{Appended, EntryKind};
use crate::error::LedgerError;

/// The most entries the writer puts in one transaction (a single larger `append_many` is kept whole).
pub(crate) const MAX_BATCH_ENTRIES: usize = 4096;

/// Rows per multi-row INSERT statement, largest first (each size is one cached prepared statement).
const CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

/// A draft that passed validation and was encoded by the caller's task.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub ts_ms: i64,
    pub sandbox: Option<String>,
    pub kind: EntryKind,
    pub body: String,
}

/// A request to the writer task.
pub(crate) enum Command {
    /// Append these entries in order, in one transaction, and report where they landed.
    Append {
        entries: Vec<Prepared>,
        ack: oneshot::Sender<Result<Vec<Appended>, LedgerError>>,
    },
    /// Finish everything queued before this, close the connection and stop.
    Close { ack: oneshot::Sender<()> },
}

/// The last committed entry (`seq` 0 and the zero hash when the ledger is empty).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    pub seq: u64,
    pub hash: Digest,
}

/// Reads the head from the database.
pub(crate) async fn read_head(conn: &mut SqliteConnection) -> Result<Head, LedgerError> {
    let row = sqlx::query("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(LedgerError::read)?;
    let Some(row) = row else {
        return Ok(Head {
            seq: 0,
            hash: Digest::ZERO,
        });
    };
    let seq: i64 = row.try_get(0).map_err(LedgerError::read)?;
    let seq = u64::try_from(seq).map_err(|_| LedgerError::CorruptEntry {
        seq: 0,
        reason: format!("the last seq is {seq}"),
    })?;
    let hash = row
        .try_get::<&[u8], _>(1)
        .ok()
        .and_then(|h| Digest::from_slice(h).ok())
        .ok_or_else(|| LedgerError::CorruptEntry {
            seq,
            reason: "its hash is not 32 bytes".into(),
        })?;
    Ok(Head { seq, hash })
}

/// The writer task. `_lock` is the held writer lock, released when the task ends.
pub(crate) async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Command>,
    head: Head,
    _lock: File,
) {
    let mut head = Some(head);
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut close = None;
        let mut queued = 0;
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Append { entries, ack } => {
                    queued += entries.len();
                    batch.push((entries, ack));
                }
                Command::Close { ack } => {
                    close = Some(ack);
                    break;
                }
            }
            if queued < MAX_BATCH_ENTRIES {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let span = tracing::debug_span!(
                "ledger.commit",
                requests = batch.len(),
                entries = tracing::field::Empty
            );
            commit_batch(&mut conn, &mut head, batch).instrument(span).await;
        }
        if let Some(ack) = close {
            rx.close();
            // Anything queued behind the close is refused: the senders see the channel closed.
            while let Ok(cmd) = rx.try_recv() {
                if let Command::Append { ack, .. } = cmd {
                    let _ = ack.send(Err(LedgerError::Closed));
                }
            }
            close_conn(conn).await;
            let _ = ack.send(());
            return;
        }
    }
    close_conn(conn).await;
}

async fn close_conn(conn: SqliteConnection) {
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the ledger write connection failed");
    }
}

type Batch = Vec<(Vec<Prepared>, oneshot::Sender<Result<Vec<Appended>, LedgerError>>)>;

/// A row ready to insert.
struct NewRow {
    seq: i64,
    ts_ms: i64,
    sandbox: Option<String>,
    kind: &'static str,
    body: String,
    prev: Digest,
    hash: Digest,
}

async fn commit_batch(conn: &mut SqliteConnection, head: &mut Option<Head>, batch: Batch) {
    let start = match *head {
        Some(h) => h,
        None => match read_head(conn).await {
            Ok(h) => h,
            Err(e) => {
                let reason = e.to_string();
                for (_, ack) in batch {
                    let _ = ack.send(Err(LedgerError::HeadUnavailable {
                        reason: reason.clone(),
                    }));
                }
                return;
            }
        },
    };

    let mut seq = start.seq;
    let mut prev = start.hash;
    let mut rows: Vec<NewRow> = Vec::new();
    let mut acks = Vec::with_capacity(batch.len());
    for (entries, ack) in batch {
        let mut appended = Vec::with_capacity(entries.len());
        for p in entries {
            seq += 1;
            let hash = entry_hash(seq, &prev, p.body.as_bytes());
            appended.push(Appended { seq, hash });
            rows.push(NewRow {
                // Seqs beyond i64::MAX would take 292 years at a million appends per second.
                seq: i64::try_from(seq).unwrap_or(i64::MAX),
                ts_ms: p.ts_ms,
                sandbox: p.sandbox,
                kind: p.kind.as_str(),
                body: p.body,
                prev,
                hash,
            });
            prev = hash;
        }
        acks.push((appended, ack));
    }
    tracing::Span::current().record("entries", rows.len());

    match insert_and_commit(conn, &rows).await {
        Ok(()) => {
            *head = Some(Head { seq, hash: prev });
            for (appended, ack) in acks {
                let _ = ack.send(Ok(appended));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "committing a batch of ledger entries failed");
            let e = Arc::new(e);
            for (_, ack) in acks {
                let _ = ack.send(Err(LedgerError::Commit(Arc::clone(&e))));
            }
            *head = match read_head(conn).await {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::error!(error = %e, "re-reading the ledger head failed; will retry");
                    None
                }
            };
        }
    }
}

async fn insert_and_commit(conn: &mut SqliteConnection, rows: &[NewRow]) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    let mut rest = rows;
    while !rest.is_empty() {
        let n = CHUNKS.into_iter().find(|&c| c <= rest.len()).unwrap_or(1);
        let (chunk, tail) = rest.split_at(n);
        let mut q = sqlx::query(insert_sql(n));
        for r in chunk {
            q = q
                .bind(r.seq)
                .bind(r.ts_ms)
                .bind(r.sandbox.as_deref())
                .bind(r.kind)
                .bind(r.body.as_str())
                .bind(&r.prev.0[..])
                .bind(&r.hash.0[..]);
        }
        q.execute(&mut *tx).await?;
        rest = tail;
    }
    tx.commit().await
}

/// The multi-row INSERT for `n` rows (`n` is one of [`CHUNKS`]).
fn insert_sql(n: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        CHUNKS
            .iter()
            .map(|&n| {
                let mut s =
                    String::from("INSERT INTO entries (seq, ts_ms, sandbox, kind, body, prev, hash) VALUES ");
                for i in 0..n {
                    s.push_str(if i == 0 {
                        "(?,?,?,?,?,?,?)"
                    } else {
                        ",(?,?,?,?,?,?,?)"
                    });
                }
                s
            })
            .collect()
    });
    let i = CHUNKS.iter().position(|&c| c == n).unwrap_or(CHUNKS.len() - 1);
    all.get(i).map(String::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_has_one_tuple_per_row() {
        for n in CHUNKS {
            assert_eq!(insert_sql(n).matches("(?,?,?,?,?,?,?)").count(), n);
        }
    }
}
