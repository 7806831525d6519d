//! The ledger benchmark: a small run always (so the figures stay measurable), the full one on demand:
//!
//! ```text
//! cargo test --release -p airlock-bench --test ledger -- --ignored --nocapture
//! ```
//! (`AIRLOCK_LEDGER_BENCH_ENTRIES` sets the verify size, default 1,000,000;
//! `AIRLOCK_LEDGER_BENCH_DIR` keeps the ledgers there instead of a temporary directory.)

use airlock_bench::ledger;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_and_reports_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let figures = ledger::run(dir.path(), 3000).await.unwrap();
    for key in [
        "append_batched_per_s",
        "append_single_p50_us",
        "append_single_p99_us",
        "verify_entries",
        "verify_s",
        "export_s",
        "db_bytes",
    ] {
        assert!(
            figures.get(key).is_some_and(|v| v.is_number()),
            "{key} missing from {figures}"
        );
    }
    assert_eq!(figures["verify_entries"], 3000);
    // A second run tops the big ledger up instead of rebuilding it.
    let again = ledger::run(dir.path(), 3500).await.unwrap();
    assert_eq!(again["verify_entries"], 3500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes a minute and ~0.5 GB of disk; run with --release --ignored"]
async fn bench_full() {
    let entries = std::env::var("AIRLOCK_LEDGER_BENCH_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("AIRLOCK_LEDGER_BENCH_DIR").map_or(tmp.path().to_path_buf(), Into::into);
    let figures = ledger::run(&dir, entries).await.unwrap();
    println!("{}", serde_json::to_string_pretty(&figures).unwrap());
}
