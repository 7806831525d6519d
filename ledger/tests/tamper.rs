//! Tampering with the database file, the blobs or an export is reported at the right entry;
//! bad directories and files give clear errors, never panics.

mod common;

use std::path::Path;

use airlock_ledger::{verify_jsonl, Broken, Digest, Ledger, LedgerError, Query, BLOBS_DIR, DB_FILE};
use common::{fill, flip_body_byte, fresh, tamper};
use sqlx::{ConnectOptions, Connection};
use tempfile::TempDir;

/// A closed ledger of `n` entries; entries 20, 30 and 45 reference blob A, entry 25 blob B.
async fn built(n: u64) -> (TempDir, Digest, Digest) {
    let (dir, ledger) = fresh().await;
    let a = ledger
        .put_blob(b"blob A: a screenshot")
        .await
        .expect("put blob A");
    let b = ledger
        .put_blob(b"blob B: another screenshot")
        .await
        .expect("put blob B");
    fill(&ledger, n, |i| match i {
        20 | 30 | 45 => Some(a),
        25 => Some(b),
        _ => None,
    })
    .await;
    assert!(ledger.verify().await.expect("verify").is_ok());
    ledger.close().await;
    (dir, a, b)
}

async fn first_broken(dir: &Path) -> Broken {
    let ledger = Ledger::open_readonly(dir).await.expect("open read-only");
    let report = ledger.verify().await.expect("verify");
    ledger.close().await;
    report.first_broken.expect("tampering must be detected")
}

fn blob_path(dir: &Path, h: &Digest) -> std::path::PathBuf {
    let hex = h.to_hex();
    dir.join(BLOBS_DIR).join(&hex[..2]).join(&hex[2..])
}

#[tokio::test]
async fn one_body_byte_is_reported_at_its_entry() {
    let (dir, ..) = built(60).await;
    flip_body_byte(dir.path(), 37).await;
    let b = first_broken(dir.path()).await;
    assert_eq!(
        (b.seq, b.reason.as_str()),
        (37, "hash does not match its contents")
    );
}

#[tokio::test]
async fn a_changed_hash_column_is_reported() {
    let (dir, ..) = built(60).await;
    tamper(
        dir.path(),
        "UPDATE entries SET hash = zeroblob(32) WHERE seq = 10",
    )
    .await;
    let b = first_broken(dir.path()).await;
    assert_eq!(
        (b.seq, b.reason.as_str()),
        (10, "hash does not match its contents")
    );
}

#[tokio::test]
async fn a_changed_prev_column_is_reported() {
    let (dir, ..) = built(30).await;
    tamper(
        dir.path(),
        "UPDATE entries SET prev = (SELECT hash FROM entries WHERE seq = 3) WHERE seq = 12",
    )
    .await;
    let b = first_broken(dir.path()).await;
    assert_eq!((b.seq, b.reason.as_str()), (12, "prev does not link to entry 11"));
}

#[tokio::test]
async fn query_columns_must_agree_with_the_body() {
    for (sql, column) in [
        ("UPDATE entries SET sandbox = 'sbx-9' WHERE seq = 14", "sandbox"),
        ("UPDATE entries SET sandbox = NULL WHERE seq = 14", "sandbox"),
        ("UPDATE entries SET kind = 'egress' WHERE seq = 14", "kind"),
        ("UPDATE entries SET ts_ms = ts_ms + 1 WHERE seq = 14", "ts_ms"),
        ("UPDATE entries SET ts_ms = 'soon' WHERE seq = 14", "ts_ms"),
    ] {
        let (dir, ..) = built(20).await;
        tamper(dir.path(), sql).await;
        let b = first_broken(dir.path()).await;
        assert_eq!(b.seq, 14, "{sql}");
        assert_eq!(
            b.reason,
            format!("column {column} disagrees with the hashed body"),
            "{sql}"
        );
    }
}

#[tokio::test]
async fn a_deleted_row_is_a_gap() {
    let (dir, ..) = built(60).await;
    tamper(dir.path(), "DELETE FROM entries WHERE seq = 50").await;
    let b = first_broken(dir.path()).await;
    assert_eq!((b.seq, b.reason.as_str()), (50, "seq gap: expected 50, found 51"));
}

#[tokio::test]
async fn a_modified_blob_is_reported_at_its_first_reference() {
    let (dir, a, _) = built(50).await;
    let path = blob_path(dir.path(), &a);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[3] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let b = first_broken(dir.path()).await;
    assert_eq!(b.seq, 20);
    assert_eq!(
        b.reason,
        format!("blob {a} referenced as frame_after: content does not match its hash")
    );
}

#[tokio::test]
async fn a_deleted_blob_is_reported() {
    let (dir, _, blob_b) = built(50).await;
    std::fs::remove_file(blob_path(dir.path(), &blob_b)).unwrap();
    let b = first_broken(dir.path()).await;
    assert_eq!(b.seq, 25);
    assert_eq!(
        b.reason,
        format!("blob {blob_b} referenced as frame_after is missing")
    );
}

#[tokio::test]
async fn the_append_only_guard_refuses_updates_and_deletes() {
    let (dir, ..) = built(5).await;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join(DB_FILE))
        .connect()
        .await
        .unwrap();
    for sql in [
        "UPDATE entries SET kind = 'egress' WHERE seq = 2",
        "DELETE FROM entries WHERE seq = 2",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    conn.close().await.unwrap();
    assert!(Ledger::open_readonly(dir.path())
        .await
        .unwrap()
        .verify()
        .await
        .unwrap()
        .is_ok());
}

#[tokio::test]
async fn damaged_rows_are_errors_for_readers_not_panics() {
    let (dir, ..) = built(10).await;
    tamper(dir.path(), "UPDATE entries SET body = '{not json' WHERE seq = 4").await;
    let ledger = Ledger::open(dir.path()).await.unwrap();
    let err = ledger.query(&Query::default()).await.unwrap_err();
    assert!(matches!(err, LedgerError::CorruptEntry { seq: 4, .. }), "{err}");
    let err = ledger.export(&mut Vec::new()).await.unwrap_err();
    assert!(matches!(err, LedgerError::CorruptEntry { seq: 4, .. }), "{err}");
    let b = ledger.verify().await.unwrap().first_broken.unwrap();
    assert_eq!(
        (b.seq, b.reason.as_str()),
        (4, "hash does not match its contents")
    );
    // The undamaged part is still readable.
    assert_eq!(
        ledger
            .query(&Query {
                limit: 3,
                ..Query::default()
            })
            .await
            .unwrap()
            .len(),
        3
    );
    ledger.close().await;

    // A head whose hash is not 32 bytes cannot be appended to: a clear error at open.
    tamper(dir.path(), "UPDATE entries SET hash = x'0102' WHERE seq = 10").await;
    let err = Ledger::open(dir.path()).await.unwrap_err();
    assert!(matches!(err, LedgerError::CorruptEntry { seq: 10, .. }), "{err}");
    let b = first_broken(dir.path()).await;
    assert_eq!(b.seq, 4);
}

#[tokio::test]
async fn a_tampered_export_line_is_reported() {
    let (dir, ..) = built(40).await;
    let ledger = Ledger::open_readonly(dir.path()).await.unwrap();
    let mut out = Vec::new();
    ledger.export(&mut out).await.unwrap();
    ledger.close().await;
    let lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let join = |lines: &[String]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    let check = |text: String| verify_jsonl(text.as_bytes(), Some(&dir.path().join(BLOBS_DIR))).unwrap();
    assert!(check(join(&lines)).is_ok());

    // One character of the body of entry 22.
    let mut edited = lines.clone();
    edited[21] = edited[21].replacen("hello 22", "hello 23", 1);
    assert_ne!(edited[21], lines[21]);
    let b = check(join(&edited)).first_broken.unwrap();
    assert_eq!(
        (b.seq, b.reason.as_str()),
        (22, "hash does not match its contents")
    );

    // A line that is no longer JSON is reported at the seq it should have had.
    let mut edited = lines.clone();
    edited[29].truncate(50);
    let report = check(join(&edited));
    let b = report.first_broken.unwrap();
    assert_eq!(b.seq, 30);
    assert!(
        b.reason.starts_with("line 30 is not a valid export record"),
        "{}",
        b.reason
    );
    assert_eq!(report.entries, 29);

    // A dropped line is a gap; a blank line is not a record.
    let mut edited = lines.clone();
    edited.remove(9);
    assert_eq!(check(join(&edited)).first_broken.unwrap().seq, 10);
    let mut edited = lines.clone();
    edited.insert(5, String::new());
    assert_eq!(check(join(&edited)).first_broken.unwrap().seq, 6);

    // Offline blob checks work like the database walk.
    std::fs::remove_dir_all(dir.path().join(BLOBS_DIR)).unwrap();
    let b = check(join(&lines)).first_broken.unwrap();
    assert_eq!(b.seq, 20);
    assert!(
        b.reason.ends_with("referenced as frame_after is missing"),
        "{}",
        b.reason
    );
    assert!(verify_jsonl(join(&lines).as_bytes(), None).unwrap().is_ok());
}

#[tokio::test]
async fn unusable_directories_and_files_are_clear_errors() {
    // Not creatable, even by root.
    let err = Ledger::open(Path::new("/proc/self/airlock-ledger"))
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::CreateDir { .. }), "{err}");
    assert!(err.to_string().contains("/proc/self/airlock-ledger"));

    // A file where the directory should be.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = Ledger::open(&file).await.unwrap_err();
    assert!(matches!(err, LedgerError::CreateDir { .. }), "{err}");

    // A database file that is not a database.
    let dir = tmp.path().join("garbage");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join(DB_FILE), vec![0x5a; 8192]).unwrap();
    let err = Ledger::open(&dir).await.unwrap_err();
    assert!(
        matches!(err, LedgerError::Open { .. } | LedgerError::Migrate { .. }),
        "{err}"
    );
    let err = Ledger::open_readonly(&dir).await.unwrap_err();
    assert!(matches!(err, LedgerError::Open { .. }), "{err}");

    // Some other application's SQLite database.
    let dir = tmp.path().join("other-app");
    std::fs::create_dir(&dir).unwrap();
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.join(DB_FILE))
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE entries (id TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let err = Ledger::open(&dir).await.unwrap_err();
    assert!(matches!(err, LedgerError::Migrate { .. }), "{err}");

    // A truncated ledger file (the header survives, the pages don't).
    let (dir, ..) = built(30).await;
    let db = dir.path().join(DB_FILE);
    assert!(
        !dir.path().join(format!("{DB_FILE}-wal")).exists(),
        "close checkpoints the WAL"
    );
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..bytes.len().min(4096 + 100)]).unwrap();
    match Ledger::open_readonly(dir.path()).await {
        Err(e) => assert!(matches!(e, LedgerError::Open { .. }), "{e}"),
        // Opening may succeed; reading then fails or reports a break, without panicking.
        Ok(ledger) => match ledger.verify().await {
            Err(e) => assert!(matches!(e, LedgerError::Read(_)), "{e}"),
            Ok(report) => assert!(!report.is_ok() || report.entries < 30, "{report:?}"),
        },
    }
}
