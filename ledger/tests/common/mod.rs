//! Shared harness for the ledger's integration tests: fresh ledgers, sample drafts and direct
//! (trigger-bypassing) access to the SQLite file for tampering.

#![allow(dead_code)]

use std::path::Path;

use airlock_ledger::{Actor, Digest, Draft, Entry, EntryKind, Ledger, Query, DB_FILE};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tempfile::TempDir;

/// A draft whose content depends on `i`, in one of three sandboxes.
pub fn draft(i: u64) -> Draft {
    Draft {
        ts_ms: 1_700_000_000_000 + i,
        sandbox: Some(format!("sbx-{}", i % 3)),
        kind: EntryKind::ALL[(i % EntryKind::ALL.len() as u64) as usize],
        actor: Actor {
            agent: Some("agent-a".into()),
            principal: Some("alice".into()),
            operator: None,
        },
        epoch: Some(i / 10),
        policy_hash: Some("ab".repeat(32)),
        frame_before: None,
        frame_after: None,
        what: serde_json::json!({"action": {"type": "type_text", "text": format!("hello {i}")}, "n": i}),
    }
}

/// Every entry, in order, read page by page through [`Ledger::query`].
pub async fn all_entries(ledger: &Ledger) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut after = None;
    loop {
        let page = ledger
            .query(&Query {
                after_seq: after,
                ..Query::default()
            })
            .await
            .expect("query a page");
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        entries.extend(page);
    }
    entries
}

/// A new ledger in a new temporary directory.
pub async fn fresh() -> (TempDir, Ledger) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).await.expect("open a fresh ledger");
    (dir, ledger)
}

/// Appends `n` entries one by one (seq 1..=n), attaching `frames[i]` as frame_after where given.
pub async fn fill(ledger: &Ledger, n: u64, frame_for: impl Fn(u64) -> Option<Digest>) {
    for i in 1..=n {
        let mut d = draft(i);
        d.frame_after = frame_for(i);
        let a = ledger.append(d).await.expect("append");
        assert_eq!(a.seq, i);
    }
}

/// A direct connection to the ledger's SQLite file with the append-only triggers dropped,
/// as an attacker with the file would have.
pub async fn raw(dir: &Path) -> SqliteConnection {
    let mut conn = SqliteConnectOptions::new()
        .filename(dir.join(DB_FILE))
        .connect()
        .await
        .expect("connect to the ledger file directly");
    sqlx::query("DROP TRIGGER IF EXISTS entries_no_update")
        .execute(&mut conn)
        .await
        .expect("drop update trigger");
    sqlx::query("DROP TRIGGER IF EXISTS entries_no_delete")
        .execute(&mut conn)
        .await
        .expect("drop delete trigger");
    conn
}

/// Runs one tampering statement directly on the file.
pub async fn tamper(dir: &Path, sql: &str) {
    let mut conn = raw(dir).await;
    let done = sqlx::query(sql).execute(&mut conn).await.expect("tamper");
    assert_eq!(done.rows_affected(), 1, "{sql}");
    conn.close().await.expect("close raw connection");
}

/// Changes one byte of entry `seq`'s body (an ASCII letter becomes another), keeping it UTF-8.
pub async fn flip_body_byte(dir: &Path, seq: i64) {
    let mut conn = raw(dir).await;
    let body: String = sqlx::query_scalar("SELECT body FROM entries WHERE seq = ?")
        .bind(seq)
        .fetch_one(&mut conn)
        .await
        .expect("read body");
    let mut bytes = body.into_bytes();
    let at = (bytes.len() / 2..bytes.len())
        .find(|&i| bytes[i].is_ascii_lowercase())
        .expect("a letter in the second half of the body");
    bytes[at] = if bytes[at] == b'z' { b'y' } else { bytes[at] + 1 };
    let body = String::from_utf8(bytes).expect("still UTF-8");
    sqlx::query("UPDATE entries SET body = ? WHERE seq = ?")
        .bind(body)
        .bind(seq)
        .execute(&mut conn)
        .await
        .expect("write body");
    conn.close().await.expect("close raw connection");
}
