//! The benchmarks behind `airlock bench`: each runs for real on this host and returns one JSON
//! object of named figures, which the `airlock` command prints.
//!
//! - [`boot`]: per backend, cold start, screenshot and input latency, channel throughput, memory;
//! - [`ledger`]: durable append latency and throughput, verify and export of a big ledger;
//! - [`gateway`]: the supervisor's own cost per agent action, against a fake guest that answers
//!   at once (`airlock-test-kit`'s [`FakeGuest`](airlock_test_kit::FakeGuest));
//! - [`stream`]: input → pixels in headless Chromium, takeover, bandwidth, CPU (it starts the
//!   running executable as `airlock serve`, so only the `airlock` binary can run it);
//! - [`egress`]: the egress gateway's throughput and latencies against real sandboxes;
//! - [`files`]: file transfer into and out of a real sandbox, over the raw guest channel and
//!   through the served API, in the same run.
//!
//! Every percentile in every figure is [`percentile`]'s. A harness like the tests, so its errors
//! are `anyhow` errors.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let figures = airlock_bench::gateway::run(dir.path(), 200).await?;
//! println!("{}", figures["allowed_action_total_us_p50"]);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod boot;
pub mod egress;
mod fidelity;
pub mod files;
pub mod gateway;
pub mod ledger;
pub mod stream;

/// The `p` quantile (0.0 ..= 1.0) of `samples` by nearest rank (the sorted sample at index
/// `round((n - 1) × p)`; the upper middle one for a median of an even count), rounded to `places`
/// decimals; `None` when there are no samples.
pub fn percentile(samples: &[f64], p: f64, places: i32) -> Option<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    let i = ((last as f64 * p.clamp(0.0, 1.0)).round() as usize).min(last);
    let scale = 10f64.powi(places);
    Some((sorted[i] * scale).round() / scale)
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_of_known_samples() {
        // 1 ..= 20, shuffled: p50 is the 11th (round(19 × 0.5) = 10), p95 the 19th, p100 the 20th.
        let v: Vec<f64> = (1..=20).map(|i| f64::from((i * 7) % 20 + 1)).collect();
        assert_eq!(percentile(&v, 0.5, 1), Some(11.0));
        assert_eq!(percentile(&v, 0.95, 1), Some(19.0));
        assert_eq!(percentile(&v, 1.0, 1), Some(20.0));
        assert_eq!(percentile(&v, 0.0, 1), Some(1.0));
        // An odd count: the middle one.
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5, 0), Some(2.0));
    }

    #[test]
    fn rounds_to_the_places_asked() {
        let v = [1.234_56, 9.87];
        assert_eq!(percentile(&v, 0.0, 2), Some(1.23));
        assert_eq!(percentile(&v, 0.0, 1), Some(1.2));
        assert_eq!(percentile(&v, 0.0, 0), Some(1.0));
        assert_eq!(percentile(&v, 1.0, 1), Some(9.9));
    }

    #[test]
    fn no_samples_no_percentile() {
        assert_eq!(percentile(&[], 0.5, 1), None);
        assert_eq!(percentile(&[], 0.95, 1), None);
    }
}
