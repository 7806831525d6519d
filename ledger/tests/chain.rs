//! The chain through the public API: append, query, head, verify, export and offline verification.

mod common;

use airlock_ledger::{
    entry_hash, verify_jsonl, Digest, Draft, EntryKind, Ledger, LedgerError, Query, BLOBS_DIR,
    MAX_QUERY_LIMIT,
};
use common::{draft, fill, fresh, raw};
use sqlx::Connection;

#[tokio::test]
async fn append_100_then_verify() {
    let (dir, ledger) = fresh().await;
    let shots = [
        ledger.put_blob(b"frame one").await.unwrap(),
        ledger.put_blob(b"frame two").await.unwrap(),
    ];
    fill(&ledger, 100, |i| {
        (i % 10 == 0).then(|| shots[(i / 10 % 2) as usize])
    })
    .await;

    let head = ledger.head().await.unwrap().unwrap();
    assert_eq!(head.seq, 100);
    let report = ledger.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.entries, 100);
    assert_eq!(report.blobs_checked, 2);
    assert_eq!(report.head, Some(head.hash));

    // The chain links as documented.
    let entries = ledger.query(&Query::default()).await.unwrap();
    assert_eq!(entries.len(), 100);
    let mut prev = Digest::ZERO;
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.prev, prev);
        let body = e.body.canonical_bytes().unwrap();
        assert_eq!(entry_hash(e.seq, &prev, &body), e.hash);
        assert_eq!(e.body, {
            let mut d = draft(e.seq);
            d.frame_after = (e.seq % 10 == 0).then(|| shots[(e.seq / 10 % 2) as usize]);
            d
        });
        prev = e.hash;
    }
    ledger.close().await;
    drop(dir);
}

#[tokio::test]
async fn reopen_continues_the_chain() {
    let (dir, ledger) = fresh().await;
    fill(&ledger, 5, |_| None).await;
    let head = ledger.head().await.unwrap();
    ledger.close().await;

    let ledger = Ledger::open(dir.path()).await.unwrap();
    assert_eq!(ledger.head().await.unwrap(), head);
    let next = ledger.append(draft(6)).await.unwrap();
    assert_eq!(next.seq, 6);
    let sixth = ledger
        .query(&Query {
            after_seq: Some(5),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(sixth[0].prev, head.unwrap().hash);
    assert!(ledger.verify().await.unwrap().is_ok());
    ledger.close().await;
}

#[tokio::test]
async fn canonical_encoding_is_key_order_independent() {
    let a: serde_json::Value =
        serde_json::from_str(r#"{"z":1,"a":{"y":[1,{"q":2,"p":3}],"b":"x"}}"#).unwrap();
    let b: serde_json::Value =
        serde_json::from_str(r#"{"a":{"b":"x","y":[1,{"p":3,"q":2}]},"z":1}"#).unwrap();
    let mut hashes = Vec::new();
    for what in [a, b] {
        let (_dir, ledger) = fresh().await;
        let appended = ledger.append(Draft { what, ..draft(1) }).await.unwrap();
        hashes.push(appended.hash);
        ledger.close().await;
    }
    assert_eq!(hashes[0], hashes[1]);
}

#[tokio::test]
async fn export_round_trips_through_verify_jsonl() {
    let (dir, ledger) = fresh().await;
    let shot = ledger.put_blob(&[7u8; 5000]).await.unwrap();
    fill(&ledger, 40, |i| (i % 7 == 0).then_some(shot)).await;
    // Numbers of every shape survive export and re-hashing byte for byte.
    let mut d = draft(41);
    d.what =
        serde_json::json!({"f": 0.1, "g": 1.0, "big": u64::MAX, "neg": -5, "e": 1e300, "s": "é\n\"\u{1}"});
    ledger.append(d.clone()).await.unwrap();
    let last = ledger
        .query(&Query {
            after_seq: Some(40),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(last[0].body, d);

    let mut out = Vec::new();
    assert_eq!(ledger.export(&mut out).await.unwrap(), 41);
    let text = String::from_utf8(out.clone()).unwrap();
    assert_eq!(text.lines().count(), 41);
    assert!(text.starts_with("{\"seq\":1,\"prev\":\"0000"));

    let db_report = ledger.verify().await.unwrap();
    let with_blobs = verify_jsonl(&out[..], Some(&dir.path().join(BLOBS_DIR))).unwrap();
    assert_eq!(with_blobs, db_report);
    assert_eq!(with_blobs.blobs_checked, 1);
    let without = verify_jsonl(&out[..], None).unwrap();
    assert!(without.is_ok());
    assert_eq!(
        (without.entries, without.blobs_checked, without.head),
        (41, 0, db_report.head)
    );

    // An empty export verifies as an empty chain.
    let empty = verify_jsonl(&b""[..], None).unwrap();
    assert_eq!((empty.entries, empty.head, empty.first_broken), (0, None, None));
    ledger.close().await;
}

#[tokio::test]
async fn query_filters_and_limits() {
    let (_dir, ledger) = fresh().await;
    let many = ledger.append_many((1..=60).map(draft).collect()).await.unwrap();
    assert_eq!(
        many.iter().map(|a| a.seq).collect::<Vec<_>>(),
        (1..=60).collect::<Vec<_>>()
    );
    assert!(ledger.append_many(Vec::new()).await.unwrap().is_empty());

    let q = |sandbox: Option<&str>, after: Option<u64>, kinds: Vec<EntryKind>, limit: u32| Query {
        sandbox: sandbox.map(str::to_owned),
        after_seq: after,
        kinds,
        limit,
    };
    let seqs = |entries: Vec<airlock_ledger::Entry>| entries.iter().map(|e| e.seq).collect::<Vec<_>>();

    let sbx1 = seqs(ledger.query(&q(Some("sbx-1"), None, vec![], 100)).await.unwrap());
    assert_eq!(sbx1, (1..=60).filter(|i| i % 3 == 1).collect::<Vec<_>>());
    let paged = seqs(
        ledger
            .query(&q(Some("sbx-1"), Some(10), vec![], 3))
            .await
            .unwrap(),
    );
    assert_eq!(paged, vec![13, 16, 19]);
    let kinds = vec![EntryKind::ActionExecuted, EntryKind::Egress, EntryKind::Egress];
    let by_kind = seqs(ledger.query(&q(None, None, kinds, 100)).await.unwrap());
    // The common drafts cycle through EntryKind::ALL by seq.
    let at = |k: EntryKind| EntryKind::ALL.iter().position(|&x| x == k).expect("a kind") as u64;
    let n = EntryKind::ALL.len() as u64;
    assert_eq!(
        by_kind,
        (1..=60)
            .filter(|i| i % n == at(EntryKind::ActionExecuted) || i % n == at(EntryKind::Egress))
            .collect::<Vec<_>>()
    );
    assert!(ledger.query(&q(None, None, vec![], 0)).await.unwrap().is_empty());
    assert!(ledger
        .query(&q(None, Some(u64::MAX), vec![], 10))
        .await
        .unwrap()
        .is_empty());
    assert!(ledger
        .query(&q(Some("nope"), None, vec![], 10))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        ledger
            .query(&q(None, None, vec![], u32::MAX))
            .await
            .unwrap()
            .len(),
        60
    );
    assert_eq!(Query::default().limit, MAX_QUERY_LIMIT);
    ledger.close().await;
}

#[tokio::test]
async fn drafts_that_cannot_be_appended_are_refused() {
    let (_dir, ledger) = fresh().await;
    let missing = Digest::of(b"never stored");
    let err = ledger
        .append(Draft {
            frame_before: Some(missing),
            ..draft(1)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::MissingBlob {
                field: "frame_before",
                ..
            }
        ),
        "{err}"
    );
    let err = ledger
        .append(Draft {
            ts_ms: u64::MAX,
            ..draft(1)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::InvalidDraft { .. }), "{err}");
    let mut deep = serde_json::json!(0);
    for _ in 0..200 {
        deep = serde_json::json!([deep]);
    }
    let err = ledger
        .append(Draft {
            what: deep,
            ..draft(1)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::Canonical(_)), "{err}");
    // A refused draft in a batch refuses the batch, and nothing was written.
    let err = ledger
        .append_many(vec![
            draft(1),
            Draft {
                ts_ms: u64::MAX,
                ..draft(2)
            },
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::InvalidDraft { .. }));
    assert_eq!(ledger.head().await.unwrap(), None);
    ledger.close().await;
}

#[tokio::test]
async fn blobs_are_content_addressed_and_checked_on_read() {
    let (dir, ledger) = fresh().await;
    let h = ledger.put_blob(b"screenshot").await.unwrap();
    assert_eq!(h, Digest::of(b"screenshot"));
    assert_eq!(ledger.put_blob(b"screenshot").await.unwrap(), h);
    let hex = h.to_hex();
    let path = dir.path().join(BLOBS_DIR).join(&hex[..2]).join(&hex[2..]);
    assert_eq!(std::fs::read(&path).unwrap(), b"screenshot");
    assert_eq!(ledger.read_blob(&h).await.unwrap(), b"screenshot");
    std::fs::write(&path, b"screenshoT").unwrap();
    assert!(matches!(
        ledger.read_blob(&h).await,
        Err(LedgerError::BlobCorrupt { .. })
    ));
    let err = ledger.read_blob(&Digest::of(b"other")).await.unwrap_err();
    assert!(matches!(err, LedgerError::BlobNotFound { .. }));
    ledger.close().await;
}

#[tokio::test]
async fn an_opened_blob_is_checked_first_and_read_from_its_start() {
    use std::io::Read;
    let (dir, ledger) = fresh().await;
    let content = vec![7u8; 300 * 1024];
    let h = ledger.put_blob(&content).await.unwrap();
    let mut read = Vec::new();
    ledger
        .open_blob(&h)
        .await
        .unwrap()
        .read_to_end(&mut read)
        .unwrap();
    assert_eq!(read, content);
    let hex = h.to_hex();
    let path = dir.path().join(BLOBS_DIR).join(&hex[..2]).join(&hex[2..]);
    std::fs::write(&path, b"changed").unwrap();
    assert!(matches!(
        ledger.open_blob(&h).await,
        Err(LedgerError::BlobCorrupt { .. })
    ));
    let err = ledger.open_blob(&Digest::of(b"other")).await.unwrap_err();
    assert!(matches!(err, LedgerError::BlobNotFound { .. }));
    ledger.close().await;
}

#[tokio::test]
async fn one_writer_per_directory_and_read_only_handles() {
    let (dir, ledger) = fresh().await;
    fill(&ledger, 3, |_| None).await;
    let err = Ledger::open(dir.path()).await.unwrap_err();
    assert!(matches!(err, LedgerError::Locked { .. }), "{err}");

    let reader = Ledger::open_readonly(dir.path()).await.unwrap();
    assert_eq!(reader.head().await.unwrap(), ledger.head().await.unwrap());
    assert!(matches!(
        reader.append(draft(4)).await,
        Err(LedgerError::ReadOnly)
    ));
    assert!(matches!(reader.put_blob(b"x").await, Err(LedgerError::ReadOnly)));
    ledger.append(draft(4)).await.unwrap();
    assert!(reader.verify().await.unwrap().is_ok());
    assert_eq!(reader.verify().await.unwrap().entries, 4);
    reader.close().await;

    let clone = ledger.clone();
    ledger.close().await;
    assert!(matches!(clone.append(draft(5)).await, Err(LedgerError::Closed)));
    assert!(matches!(clone.head().await, Err(LedgerError::Closed)));
    // The lock is released on close.
    let again = Ledger::open(dir.path()).await.unwrap();
    assert_eq!(again.head().await.unwrap().unwrap().seq, 4);
    again.close().await;

    let nothing = tempfile::tempdir().unwrap();
    let err = Ledger::open_readonly(nothing.path()).await.unwrap_err();
    assert!(matches!(err, LedgerError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn a_failed_commit_fails_its_callers_and_the_head_is_re_read() {
    let (dir, ledger) = fresh().await;
    fill(&ledger, 3, |_| None).await;
    let head = ledger.head().await.unwrap().unwrap();

    // Someone else writes entry 4 behind the writer's back (a correctly chained one).
    let body = draft(4).canonical_bytes().unwrap();
    let hash4 = entry_hash(4, &head.hash, &body);
    let mut conn = raw(dir.path()).await;
    sqlx::query(
        "INSERT INTO entries (seq, ts_ms, sandbox, kind, body, prev, hash) VALUES (4, ?, ?, ?, ?, ?, ?)",
    )
    .bind(draft(4).ts_ms as i64)
    .bind(draft(4).sandbox)
    .bind(draft(4).kind.as_str())
    .bind(String::from_utf8(body).unwrap())
    .bind(&head.hash.0[..])
    .bind(&hash4.0[..])
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    // The writer's next seq is taken: the whole batch fails, nothing of it is kept...
    let err = ledger.append_many(vec![draft(5), draft(6)]).await.unwrap_err();
    assert!(matches!(err, LedgerError::Commit(_)), "{err}");
    // ...and the writer re-reads the head, so the chain continues after entry 4.
    let next = ledger.append(draft(5)).await.unwrap();
    assert_eq!(next.seq, 5);
    let fifth = ledger
        .query(&Query {
            after_seq: Some(4),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(fifth[0].prev, hash4);
    let report = ledger.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.entries, 5);
    ledger.close().await;
}
