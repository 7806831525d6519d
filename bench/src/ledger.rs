//! `airlock bench ledger`: the ledger's throughput and latency figures, measured for real on the
//! local disk.

use std::path::Path;
use std::time::Instant;

use airlock_ledger::{Actor, Draft, EntryKind, Ledger, LedgerError, DB_FILE};
use anyhow::{Context, Result};
use serde_json::json;
use tokio::task::JoinSet;

use crate::percentile;

/// Concurrent appenders in the group-commit figure.
const APPENDERS: u64 = 64;
/// Appends per appender (64 × 800 = 51,200 entries).
const APPENDS_EACH: u64 = 800;
/// Sequential appends timed for the single-append latency figures.
const SINGLE_APPENDS: usize = 300;
/// Entries per transaction when building the verify ledger.
const BUILD_BATCH: u64 = 10_000;

/// A realistic entry (about 400 bytes of canonical body) for the `i`th action.
fn sample_draft(i: u64) -> Draft {
    Draft {
        ts_ms: 1_700_000_000_000 + i * 37,
        sandbox: Some(format!("sbx-{:04}", i % 16)),
        kind: EntryKind::ALL[(i % EntryKind::ALL.len() as u64) as usize],
        actor: Actor {
            agent: Some("claude-sonnet-4.5".into()),
            principal: Some("alice@example.com".into()),
            operator: None,
        },
        epoch: Some(i / 1000),
        policy_hash: Some("5f1d3c9a7e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c5e7b9d2f4a6c8e0b1d3f".into()),
        frame_before: None,
        frame_after: None,
        what: json!({
            "action": {"type": "left_click", "x": i % 1920, "y": i % 1080, "modifiers": ["shift"]},
            "decision": {"verdict": "allow", "rule": "default-allow-clicks", "approver": null},
            "result": {"ok": true, "duration_ms": i % 250, "note": "clicked the Submit button"},
        }),
    }
}

fn bench_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path)
        .with_context(|| format!("could not prepare the benchmark directory {}", path.display()))
}

/// A latency figure in whole microseconds.
fn micros(lat: &[f64], p: f64) -> Option<u64> {
    percentile(lat, p, 0).map(|us| us as u64)
}

/// Runs the benchmarks in subdirectories of `dir` (`single/`, `batched/`, `verify/`) and returns
/// named figures:
///
/// - `append_single_p50_us`, `append_single_p99_us`: sequential awaited appends, each durable;
/// - `append_batched_per_s`: 64 concurrent appenders, 51,200 durable appends in total;
/// - `build_per_s`: `append_many` in batches of 10,000 while building the verify ledger;
/// - `verify_entries`, `verify_s`, `export_s`: a full verify and a JSON Lines export (to a sink)
///   of a ledger of `entries_for_verify` entries, reopened read-only;
/// - `db_bytes`, `body_bytes`: the database size, the size of one sample body.
///
/// `verify/` is topped up to `entries_for_verify` entries if it already holds some, so a re-run
/// reuses the big ledger.
#[tracing::instrument(name = "ledger.bench", skip(dir))]
pub async fn run(dir: &Path, entries_for_verify: u64) -> Result<serde_json::Value> {
    // Single appends: latency of one durable commit.
    let single_dir = dir.join("single");
    bench_dir(&single_dir)?;
    let ledger = Ledger::open(&single_dir).await?;
    for i in 0..10 {
        ledger.append(sample_draft(i)).await?;
    }
    let mut lat = Vec::with_capacity(SINGLE_APPENDS);
    for i in 0..SINGLE_APPENDS as u64 {
        let t = Instant::now();
        ledger.append(sample_draft(i)).await?;
        // Whole microseconds, as the figures give them.
        lat.push(t.elapsed().as_micros() as f64);
    }
    ledger.close().await;

    // Concurrent appends: group commit.
    let batched_dir = dir.join("batched");
    bench_dir(&batched_dir)?;
    let ledger = Ledger::open(&batched_dir).await?;
    let t = Instant::now();
    let mut tasks = JoinSet::new();
    for a in 0..APPENDERS {
        let ledger = ledger.clone();
        tasks.spawn(async move {
            for i in 0..APPENDS_EACH {
                ledger.append(sample_draft(a * APPENDS_EACH + i)).await?;
            }
            Ok::<(), LedgerError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let batched_s = t.elapsed().as_secs_f64();
    ledger.close().await;

    // Build (or top up) the big ledger, then verify and export it from a cold read-only open.
    let verify_dir = dir.join("verify");
    bench_dir(&verify_dir)?;
    let ledger = Ledger::open(&verify_dir).await?;
    let have = ledger.head().await?.map_or(0, |h| h.seq);
    let t = Instant::now();
    let mut next = have;
    while next < entries_for_verify {
        let n = BUILD_BATCH.min(entries_for_verify - next);
        ledger
            .append_many((next..next + n).map(sample_draft).collect())
            .await?;
        next += n;
    }
    let built = next - have;
    let build_s = t.elapsed().as_secs_f64();
    ledger.close().await;

    let ledger = Ledger::open_readonly(&verify_dir).await?;
    let t = Instant::now();
    let report = ledger.verify().await?;
    let verify_s = t.elapsed().as_secs_f64();
    if let Some(b) = &report.first_broken {
        return Err(LedgerError::CorruptEntry {
            seq: b.seq,
            reason: b.reason.clone(),
        }
        .into());
    }
    let t = Instant::now();
    let exported = ledger.export(&mut std::io::sink()).await?;
    let export_s = t.elapsed().as_secs_f64();
    ledger.close().await;
    let db_bytes = std::fs::metadata(verify_dir.join(DB_FILE)).map_or(0, |m| m.len());
    let body_bytes = sample_draft(1).canonical_bytes().map_or(0, |b| b.len());

    Ok(json!({
        "append_single_p50_us": micros(&lat, 0.50),
        "append_single_p99_us": micros(&lat, 0.99),
        "append_batched_per_s": ((APPENDERS * APPENDS_EACH) as f64 / batched_s).round(),
        "append_batched_entries": APPENDERS * APPENDS_EACH,
        "append_batched_appenders": APPENDERS,
        "build_per_s": if built > 0 { (built as f64 / build_s).round() } else { 0.0 },
        "verify_entries": report.entries,
        "verify_s": verify_s,
        "verify_per_s": (report.entries as f64 / verify_s).round(),
        "export_entries": exported,
        "export_s": export_s,
        "db_bytes": db_bytes,
        "body_bytes": body_bytes,
    }))
}
