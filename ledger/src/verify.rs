//! Verification drivers: the database walk and the offline walk over an export.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::Path;

use airlock_protocol::error_chain;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::blobs::{BlobState, BlobStore};
use crate::chain::{
    blob_refs, check_columns, gap_reason, link_reason, Broken, ChainWalker, DerivedColumns, StoredEntry,
    VerifyReport,
};
use crate::digest::Digest;
use crate::error::LedgerError;
use crate::scan;

/// Checks each referenced blob once: present, and its content hashes to its name.
struct BlobChecker {
    store: BlobStore,
    intact: HashSet<Digest>,
    /// Whether a check failed (the walk stops there, so at most one).
    failed: bool,
}

impl BlobChecker {
    fn new(store: BlobStore) -> BlobChecker {
        BlobChecker {
            store,
            intact: HashSet::new(),
            failed: false,
        }
    }

    /// Distinct blobs read and hashed.
    fn checked(&self) -> u64 {
        self.intact.len() as u64 + u64::from(self.failed)
    }

    /// `None` when the blob is intact (or was already found intact), else the reason.
    fn check(&mut self, field: &str, hash: Digest) -> Option<String> {
        if self.intact.contains(&hash) {
            return None;
        }
        let reason = match self.store.check(&hash) {
            BlobState::Intact => {
                self.intact.insert(hash);
                return None;
            }
            BlobState::Missing => format!("blob {hash} referenced as {field} is missing"),
            BlobState::Mismatch => {
                format!("blob {hash} referenced as {field}: content does not match its hash")
            }
            BlobState::Unreadable(e) => format!("blob {hash} referenced as {field} cannot be read: {e}"),
        };
        self.failed = true;
        Some(reason)
    }
}

/// At most this many threads walk parts of the chain at once.
const MAX_PARTS: usize = 4;
/// A chain is split only when each part gets at least this many entries.
const MIN_ENTRIES_PER_PART: u64 = 50_000;

/// Walks every entry in the database in seq order (streaming) and reports the first broken one.
/// Large chains are split into contiguous seq ranges walked in parallel and joined in order, with
/// the same result as one walk. Blocking: run it on the blocking pool.
pub(crate) fn verify_db(db: &Path, blobs: BlobStore) -> Result<VerifyReport, LedgerError> {
    let parts = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_PARTS);
    verify_db_parts(db, blobs, parts, MIN_ENTRIES_PER_PART)
}

fn verify_db_parts(
    db: &Path,
    blobs: BlobStore,
    parts: usize,
    min_per_part: u64,
) -> Result<VerifyReport, LedgerError> {
    let conn = scan::open(db)?;
    let max: Option<i64> = conn
        .query_row("SELECT max(seq) FROM entries", [], |r| r.get(0))
        .map_err(scan::error(db))?;
    let max = max.and_then(|m| u64::try_from(m).ok()).unwrap_or(0);
    let parts = (parts as u64).min(max / min_per_part.max(1)).max(1);
    if parts == 1 {
        let walk = walk_range(&conn, db, (i64::MIN, i64::MAX), ChainWalker::new(), blobs)?;
        let checked = walk.checker.checked();
        return Ok(walk.walker.report(checked, walk.broken));
    }
    drop(conn);
    // Part k covers seqs [bounds[k], bounds[k + 1]); the first and last are open-ended, so rows with
    // odd seqs and rows appended meanwhile are walked too. Stored rows never change, so the parts'
    // separate snapshots agree on everything up to `max`.
    let bounds: Vec<i64> = (0..=parts)
        .map(|k| match k {
            0 => i64::MIN,
            k if k == parts => i64::MAX,
            k => i64::try_from(1 + max * k / parts).unwrap_or(i64::MAX),
        })
        .collect();
    let walks: Vec<Result<RangeWalk, LedgerError>> = std::thread::scope(|s| {
        let handles: Vec<_> = bounds
            .windows(2)
            .enumerate()
            .map(|(k, w)| {
                let (lo, hi) = (w[0], if k + 1 == parts as usize { w[1] } else { w[1] - 1 });
                let blobs = blobs.clone();
                s.spawn(move || {
                    let conn = scan::open(db)?;
                    let walker = if k == 0 {
                        ChainWalker::new()
                    } else {
                        ChainWalker::unanchored()
                    };
                    walk_range(&conn, db, (lo, hi), walker, blobs)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(LedgerError::WalkerPanicked)))
            .collect()
    });
    join(walks.into_iter().collect::<Result<Vec<_>, _>>()?)
}

/// One part of a walk.
struct RangeWalk {
    walker: ChainWalker,
    /// The first row's seq and, if it was a 32-byte value, its `prev` (to check the join).
    first: Option<(u64, Option<Digest>)>,
    broken: Option<Broken>,
    checker: BlobChecker,
}

/// Joins the parts in order: each part's first entry must continue the previous parts.
fn join(walks: Vec<RangeWalk>) -> Result<VerifyReport, LedgerError> {
    let mut blobs_intact = HashSet::new();
    let mut expected = 1u64;
    let mut prev = Digest::ZERO;
    let mut intact = 0u64;
    let report = |intact: u64, prev: Digest, blobs: u64, broken: Option<Broken>| VerifyReport {
        entries: intact,
        blobs_checked: blobs,
        head: (intact > 0).then_some(prev),
        first_broken: broken,
    };
    for (k, walk) in walks.into_iter().enumerate() {
        if k > 0 {
            let Some((first_seq, first_prev)) = walk.first else {
                continue;
            };
            if first_seq != expected {
                let b = Broken {
                    seq: expected,
                    reason: gap_reason(expected, first_seq),
                };
                return Ok(report(intact, prev, blobs_intact.len() as u64, Some(b)));
            }
            if first_prev.is_some_and(|p| p != prev) {
                let b = Broken {
                    seq: first_seq,
                    reason: link_reason(first_seq),
                };
                return Ok(report(intact, prev, blobs_intact.len() as u64, Some(b)));
            }
        }
        let failed = u64::from(walk.checker.failed);
        blobs_intact.extend(walk.checker.intact);
        if walk.walker.intact() > 0 {
            intact += walk.walker.intact();
            prev = walk.walker.last_hash();
            expected = walk.walker.expected_seq();
        }
        if let Some(b) = walk.broken {
            return Ok(report(intact, prev, blobs_intact.len() as u64 + failed, Some(b)));
        }
    }
    Ok(report(intact, prev, blobs_intact.len() as u64, None))
}

/// Walks the rows with `lo <= seq <= hi` until the first broken one.
fn walk_range(
    conn: &rusqlite::Connection,
    db: &Path,
    (lo, hi): (i64, i64),
    mut walker: ChainWalker,
    blobs: BlobStore,
) -> Result<RangeWalk, LedgerError> {
    let mut stmt = conn.prepare(scan::ENTRIES_BETWEEN).map_err(scan::error(db))?;
    let mut rows = stmt.query([lo, hi]).map_err(scan::error(db))?;
    let mut checker = BlobChecker::new(blobs);
    let mut first = None;
    let broken = loop {
        let Some(row) = rows.next().map_err(scan::error(db))? else {
            break None;
        };
        let Some(seq) = scan::seq(row) else {
            let reason = "seq is not a positive integer".to_owned();
            break Some(Broken {
                seq: walker.expected_seq(),
                reason,
            });
        };
        let columns = (
            scan::bytes(row, scan::BODY, "body"),
            scan::bytes(row, scan::PREV, "prev"),
            scan::bytes(row, scan::HASH, "hash"),
        );
        if first.is_none() {
            let prev = columns.1.as_ref().ok().and_then(|p| Digest::from_slice(p).ok());
            first = Some((seq, prev));
        }
        let (body, prev, hash) = match columns {
            (Ok(b), Ok(p), Ok(h)) => (b, p, h),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                break Some(Broken {
                    seq,
                    reason: error_chain(&e),
                })
            }
        };
        let (hash, view) = match walker.check(&StoredEntry {
            seq,
            prev,
            hash,
            body,
        }) {
            Ok(checked) => checked,
            Err(b) => break Some(b),
        };
        let cols = DerivedColumns {
            ts_ms: scan::int(row, scan::TS_MS),
            sandbox: scan::opt_bytes(row, scan::SANDBOX),
            kind: scan::opt_bytes(row, scan::KIND).and_then(|k| k.ok_or(())),
        };
        if let Err(e) = check_columns(&view, &cols) {
            break Some(Broken {
                seq,
                reason: error_chain(&e),
            });
        }
        if let Some(reason) = blob_refs(&view).find_map(|(field, blob)| checker.check(field, blob)) {
            break Some(Broken { seq, reason });
        }
        walker.accept(seq, hash);
    };
    Ok(RangeWalk {
        walker,
        first,
        broken,
        checker,
    })
}

/// One line of an export.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportLine<'a> {
    seq: u64,
    prev: Digest,
    hash: Digest,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// Verifies an export (JSON Lines, as written by [`crate::Ledger::export`]) without the database.
///
/// Each line's body is hashed exactly as it appears in the line, so the check is byte-for-byte the
/// one [`crate::Ledger::verify`] does. With `blobs_dir` (a ledger's `blobs/` directory), every
/// referenced blob is also checked; without it, blobs are not looked at. A line that does not parse
/// is reported at the seq it should have had. Only an I/O error reading `input` is an `Err`.
pub fn verify_jsonl(mut input: impl BufRead, blobs_dir: Option<&Path>) -> Result<VerifyReport, LedgerError> {
    let _span = tracing::info_span!("ledger.verify_jsonl", blobs = blobs_dir.is_some()).entered();
    let mut walker = ChainWalker::new();
    let mut checker = blobs_dir.map(|d| BlobChecker::new(BlobStore::new(d.to_path_buf())));
    let checked = |c: &Option<BlobChecker>| c.as_ref().map_or(0, BlobChecker::checked);
    let mut line = Vec::with_capacity(1024);
    let mut line_no = 0u64;
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .map_err(LedgerError::ExportRead)?
            == 0
        {
            break;
        }
        line_no += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let record: ExportLine<'_> = match serde_json::from_slice(text) {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("line {line_no} is not a valid export record: {e}");
                let b = Broken {
                    seq: walker.expected_seq(),
                    reason,
                };
                return Ok(walker.report(checked(&checker), Some(b)));
            }
        };
        let entry = StoredEntry {
            seq: record.seq,
            prev: &record.prev.0,
            hash: &record.hash.0,
            body: record.body.get().as_bytes(),
        };
        let (hash, view) = match walker.check(&entry) {
            Ok(c) => c,
            Err(b) => return Ok(walker.report(checked(&checker), Some(b))),
        };
        if let Some(c) = checker.as_mut() {
            for (field, blob) in blob_refs(&view) {
                if let Some(reason) = c.check(field, blob) {
                    let b = Broken {
                        seq: record.seq,
                        reason,
                    };
                    return Ok(walker.report(c.checked(), Some(b)));
                }
            }
        }
        walker.accept(record.seq, hash);
    }
    tracing::debug!(lines = line_no, "export verified");
    Ok(walker.report(checked(&checker), None))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::{Actor, Draft, EntryKind, Ledger, BLOBS_DIR, DB_FILE};

    const N: u64 = 120;

    /// The `i`th entry: every kind in turn, a body naming the Submit button (a scenario edits it).
    fn draft(i: u64) -> Draft {
        Draft {
            ts_ms: 1_700_000_000_000 + i * 37,
            sandbox: Some(format!("sbx-{:04}", i % 16)),
            kind: EntryKind::ALL[(i % EntryKind::ALL.len() as u64) as usize],
            actor: Actor::default(),
            epoch: Some(i / 1000),
            policy_hash: None,
            frame_before: None,
            frame_after: None,
            what: serde_json::json!({"result": {"ok": true, "note": "clicked the Submit button"}}),
        }
    }

    /// A closed ledger of `N` entries; blob A is referenced by 30 and 90, blob B by 90 only.
    async fn build() -> (tempfile::TempDir, Digest, Digest) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).await.unwrap();
        let a = ledger.put_blob(b"blob a").await.unwrap();
        let b = ledger.put_blob(b"blob b").await.unwrap();
        let drafts = (1..=N).map(|i| Draft {
            frame_before: (i == 30 || i == 90).then_some(a),
            frame_after: (i == 90).then_some(b),
            ..draft(i)
        });
        ledger.append_many(drafts.collect()).await.unwrap();
        ledger.close().await;
        (dir, a, b)
    }

    fn sql(dir: &Path, sql: &str) {
        let conn = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
        conn.execute_batch(
            "DROP TRIGGER IF EXISTS entries_no_update; DROP TRIGGER IF EXISTS entries_no_delete;",
        )
        .unwrap();
        conn.execute_batch(sql).unwrap();
    }

    fn blob_path(dir: &Path, h: &Digest) -> PathBuf {
        BlobStore::new(dir.join(BLOBS_DIR)).path(h)
    }

    /// Splitting the walk into parts never changes the report.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_walk_matches_a_single_walk() {
        type Damage = fn(&Path, Digest, Digest);
        let scenarios: Vec<(&str, Damage)> = vec![
            ("intact", |_, _, _| {}),
            ("delete first", |d, _, _| {
                sql(d, "DELETE FROM entries WHERE seq = 1")
            }),
            ("delete 40", |d, _, _| {
                sql(d, "DELETE FROM entries WHERE seq = 40")
            }),
            ("delete 41", |d, _, _| {
                sql(d, "DELETE FROM entries WHERE seq = 41")
            }),
            ("delete 40-42", |d, _, _| {
                sql(d, "DELETE FROM entries WHERE seq BETWEEN 40 AND 42")
            }),
            ("delete a middle third", |d, _, _| {
                sql(d, "DELETE FROM entries WHERE seq BETWEEN 41 AND 80")
            }),
            ("delete the first third", |d, _, _| {
                sql(d, "DELETE FROM entries WHERE seq <= 40")
            }),
            ("truncate the tail", |d, _, _| {
                sql(d, "DELETE FROM entries WHERE seq > 100")
            }),
            ("hash of 41", |d, _, _| {
                sql(d, "UPDATE entries SET hash = zeroblob(32) WHERE seq = 41")
            }),
            ("prev of 41", |d, _, _| {
                sql(d, "UPDATE entries SET prev = zeroblob(32) WHERE seq = 41")
            }),
            ("short prev of 61", |d, _, _| {
                sql(d, "UPDATE entries SET prev = x'01' WHERE seq = 61")
            }),
            ("body of 81", |d, _, _| {
                sql(
                    d,
                    "UPDATE entries SET body = replace(body, 'Submit', 'Sobmit') WHERE seq = 81",
                )
            }),
            ("sandbox of 61", |d, _, _| {
                sql(d, "UPDATE entries SET sandbox = 'x' WHERE seq = 61")
            }),
            ("body of 100 and prev of 41", |d, _, _| {
                sql(d, "UPDATE entries SET body = 'x' WHERE seq = 100; UPDATE entries SET prev = x'00' WHERE seq = 41")
            }),
            ("negative seq", |d, _, _| {
                sql(d, "INSERT INTO entries SELECT -5, ts_ms, sandbox, kind, body, prev, hash FROM entries WHERE seq = 7")
            }),
            ("blob a missing", |d, a, _| {
                std::fs::remove_file(blob_path(d, &a)).unwrap()
            }),
            ("blob b altered", |d, _, b| {
                std::fs::write(blob_path(d, &b), b"blob B").unwrap()
            }),
        ];
        for (name, damage) in scenarios {
            let (dir, a, b) = build().await;
            damage(dir.path(), a, b);
            let db = dir.path().join(DB_FILE);
            let blobs = BlobStore::new(dir.path().join(BLOBS_DIR));
            let single = verify_db_parts(&db, blobs.clone(), 1, 1).unwrap();
            assert_eq!(
                single.is_ok(),
                name == "intact" || name == "truncate the tail",
                "{name}: {single:?}"
            );
            for parts in [2, 3, 4, 5, 7] {
                let split = verify_db_parts(&db, blobs.clone(), parts, 1).unwrap();
                assert_eq!(split, single, "{name}, {parts} parts");
            }
        }
    }
}
