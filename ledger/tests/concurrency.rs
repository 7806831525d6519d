//! Concurrent appenders, and durability across `kill -9`.
//!
//! The crash test re-executes this test binary with `AIRLOCK_LEDGER_CRASH_CHILD=<dir>` and the
//! filter `crash_child`: the child appends continuously, printing `ack <seq> <hash>` after each
//! acknowledged append. The parent kills it with SIGKILL at an arbitrary moment and checks that
//! every acknowledged entry is present with the same hash and that the chain verifies.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use airlock_ledger::{Digest, Draft, Ledger};
use common::{all_entries, draft, fresh};
use tokio::task::JoinSet;

const CHILD_ENV: &str = "AIRLOCK_LEDGER_CRASH_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_contiguous_and_verify() {
    let (_dir, ledger) = fresh().await;
    let mut tasks = JoinSet::new();
    for t in 0..32u64 {
        let ledger = ledger.clone();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            for i in 0..200u64 {
                let mut d = draft(t * 1000 + i);
                d.what = serde_json::json!({"task": t, "i": i});
                mine.push((ledger.append(d).await.unwrap(), t, i));
            }
            mine
        });
    }
    let mut acked = Vec::new();
    while let Some(done) = tasks.join_next().await {
        acked.extend(done.unwrap());
    }
    acked.sort_by_key(|(a, ..)| a.seq);
    assert_eq!(
        acked.iter().map(|(a, ..)| a.seq).collect::<Vec<_>>(),
        (1..=6400).collect::<Vec<_>>()
    );

    // Each task's appends landed in its own order, each ack names the entry it appended.
    let mut last_per_task = HashMap::new();
    let entries = all_entries(&ledger).await;
    assert_eq!(entries.len(), 6400);
    for ((appended, t, i), entry) in acked.iter().zip(&entries) {
        assert_eq!(appended.hash, entry.hash);
        assert_eq!(entry.body.what, serde_json::json!({"task": t, "i": i}));
        if let Some(prev) = last_per_task.insert(*t, *i) {
            assert!(prev < *i);
        }
    }
    let report = ledger.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.entries, 6400);
    ledger.close().await;
}

/// The appender run in the child process (does nothing in a normal test run).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let ledger = Ledger::open(std::path::Path::new(&dir)).await.unwrap();
        let base = ledger.head().await.unwrap().map_or(0, |h| h.seq);
        let mut tasks = JoinSet::new();
        for t in 0..8u64 {
            let ledger = ledger.clone();
            tasks.spawn(async move {
                for i in 0.. {
                    let n = base + t * 1_000_000 + i;
                    let mut d: Draft = draft(n);
                    if i % 16 == 0 {
                        // Blobs written just before a crash must be durable too.
                        let shot = format!("screenshot {t} {i} {base}").repeat(200);
                        d.frame_after = Some(ledger.put_blob(shot.as_bytes()).await.unwrap());
                    }
                    let a = if i % 5 == 0 {
                        let many = ledger.append_many(vec![d, draft(n + 1)]).await.unwrap();
                        many[1]
                    } else {
                        ledger.append(d).await.unwrap()
                    };
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {} {}", a.seq, a.hash).unwrap();
                    out.flush().unwrap();
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
}

/// Starts the child, lets it append until it has acknowledged at least `min_acks` entries and
/// then for `extra` more, kills it with SIGKILL, and returns every (seq, hash) it acknowledged.
fn run_and_kill(dir: &std::path::Path, min_acks: usize, extra: Duration) -> Vec<(u64, Digest)> {
    let mut child = Command::new(std::env::current_exe().expect("own test binary"))
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the appender child");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split(' ');
            if parts.next() != Some("ack") {
                continue;
            }
            let seq: u64 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .expect("an ack names a seq");
            let hash: Digest = parts
                .next()
                .and_then(|s| s.parse().ok())
                .expect("an ack names a hash");
            if tx.send((seq, hash)).is_err() {
                break;
            }
        }
    });
    let mut acks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acks.len() < min_acks {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ack) => acks.push(ack),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                assert!(
                    Instant::now() < deadline,
                    "the child acknowledged only {} appends",
                    acks.len()
                );
                if let Some(status) = child.try_wait().expect("poll the child") {
                    panic!("the child exited early: {status}");
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the child closed its output"),
        }
    }
    std::thread::sleep(extra);
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("reap the child");
    assert!(!status.success());
    reader.join().expect("the reader thread");
    acks.extend(rx.try_iter());
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_entries_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut all_acks: HashMap<u64, Digest> = HashMap::new();
    for (round, extra_ms) in [(0, 37u64), (1, 250), (2, 3), (3, 0), (4, 120)] {
        let acks = run_and_kill(dir.path(), 200, Duration::from_millis(extra_ms));
        assert!(acks.len() >= 200, "round {round}");
        for (seq, hash) in acks {
            assert!(
                all_acks.insert(seq, hash).is_none(),
                "seq {seq} acknowledged twice"
            );
        }

        let ledger = Ledger::open(dir.path()).await.unwrap();
        let head = ledger.head().await.unwrap().unwrap();
        let max_acked = *all_acks.keys().max().unwrap();
        assert!(
            head.seq >= max_acked,
            "round {round}: head {} < acknowledged {max_acked}",
            head.seq
        );
        let stored: HashMap<_, _> = all_entries(&ledger)
            .await
            .into_iter()
            .map(|e| (e.seq, e.hash))
            .collect();
        for (seq, hash) in &all_acks {
            assert_eq!(
                stored.get(seq),
                Some(hash),
                "round {round}: acknowledged entry {seq} lost or changed"
            );
        }
        let report = ledger.verify().await.unwrap();
        assert!(report.is_ok(), "round {round}: {report:?}");
        assert_eq!(report.entries, head.seq);
        assert!(report.blobs_checked > 0);
        ledger.close().await;
    }
}
