//! The tamper-evident audit ledger: hash-chained entries in SQLite (sqlx), content-addressed blobs,
//! verify and export.
//!
//! # Contract
//!
//! - **Append-only chain.** Every entry gets the next `seq` (from 1, no gaps) and
//!   `hash = SHA-256("airlock-ledger/v1\n" || seq as u64 big-endian || prev || body)`, where `prev` is
//!   the previous entry's hash (32 zero bytes for the first) and `body` is the [canonical
//!   JSON](canonical) of the [`Draft`] (keys sorted recursively, no whitespace). The body bytes are
//!   stored verbatim and hashed as stored: verification never re-serializes.
//! - **Durable acknowledgement.** [`Ledger::append`] returns only after the transaction holding the
//!   entry has committed with `journal_mode=WAL` and `synchronous=FULL`. A single writer task
//!   group-commits everything queued in one transaction; a failed commit fails every append in it
//!   and nothing of it is kept. An acknowledged entry survives `kill -9` of the process.
//! - **Screenshots by content.** [`Ledger::put_blob`] stores bytes as `blobs/ab/cdef…` under their
//!   SHA-256 (temporary file, fsync, rename, directory fsync). Entries reference them by hash in
//!   `frame_before`/`frame_after`; appending a reference to a blob that is not stored is refused.
//! - **Verification.** [`Ledger::verify`] streams the whole chain and reports the *first* broken
//!   entry: a changed body, hash or link, a seq gap, a query column (`ts_ms`, `sandbox`, `kind`)
//!   that disagrees with the hashed body, a missing or altered blob. [`verify_jsonl`] does the same
//!   offline on an [export](Ledger::export). Cutting entries off the end leaves a valid shorter
//!   chain; only a head anchored elsewhere ([`VerifyReport::head`]) can reveal that.
//! - **Time is an input.** `ts_ms` comes from the caller; the ledger never reads the clock for
//!   entry content.
//! - **No panics on bad data.** A damaged row, blob or export line is reported as a [`Broken`]
//!   entry or a [`LedgerError`], never a panic.
//!
//! On disk, a ledger directory holds `ledger.db` (+ WAL files), `blobs/` and `ledger.lock`
//! (one writing [`Ledger`] per directory, across processes). Appends, queries and migrations go
//! through sqlx; the whole-chain walks (verify, export) read through rusqlite over the same bundled
//! SQLite, on blocking threads, because sqlx's per-row channel dominated a million-row walk.
//! Verify splits large chains into seq ranges walked in parallel, with the same report as one walk.
//!
//! # Example
//!
//! ```
//! use airlock_ledger::{Actor, Draft, EntryKind, Ledger, Query};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let ledger = Ledger::open(dir.path()).await?;
//!
//! let screenshot = ledger.put_blob(b"\x89PNG...").await?;
//! let appended = ledger
//!     .append(Draft {
//!         ts_ms: 1_700_000_000_000,
//!         sandbox: Some("sbx-1".into()),
//!         kind: EntryKind::ActionExecuted,
//!         actor: Actor { agent: Some("claude".into()), ..Actor::default() },
//!         epoch: Some(3),
//!         policy_hash: None,
//!         frame_before: None,
//!         frame_after: Some(screenshot),
//!         what: serde_json::json!({"action": {"type": "left_click", "x": 10, "y": 20}}),
//!     })
//!     .await?;
//! assert_eq!(appended.seq, 1);
//!
//! let entries = ledger.query(&Query { sandbox: Some("sbx-1".into()), ..Query::default() }).await?;
//! assert_eq!(entries[0].hash, appended.hash);
//!
//! let report = ledger.verify().await?;
//! assert!(report.first_broken.is_none());
//! assert_eq!(report.head, Some(appended.hash));
//!
//! let mut export = Vec::new();
//! ledger.export(&mut export).await?;
//! let offline = airlock_ledger::verify_jsonl(&export[..], Some(&dir.path().join("blobs")))?;
//! assert_eq!(offline, report);
//! ledger.close().await;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod blobs;
pub mod canonical;
pub mod chain;
mod digest;
mod entry;
mod error;
mod export;
mod ledger;
mod scan;
mod verify;
mod writer;

pub use chain::{entry_hash, Broken, VerifyReport};
pub use digest::{Digest, DigestError, Hash};
pub use entry::{Actor, Appended, Body, Draft, Entry, EntryKind, Query, UnknownKind, MAX_QUERY_LIMIT};
pub use error::LedgerError;
pub use ledger::{Ledger, BLOBS_DIR, DB_FILE, LOCK_FILE};
pub use verify::verify_jsonl;
