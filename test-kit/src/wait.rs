//! Waiting on a condition until a deadline, never for a fixed time: the wait ends as soon as the
//! condition holds, and a timeout says what was awaited.

use std::future::Future;
use std::time::{Duration, Instant};

/// The longest pause between two checks.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// A condition did not hold before the deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gave up after {waited:?} waiting until {what}")]
pub struct TimedOut {
    /// What was awaited, as the caller put it.
    pub what: String,
    /// How long it was awaited.
    pub waited: Duration,
}

/// The instant `after` from now.
pub fn deadline(after: Duration) -> Instant {
    Instant::now() + after
}

/// Checks `check` (first at once, then with pauses growing from 1 ms to 50 ms) until it yields a
/// value or `deadline` passed; `what` names the awaited condition in the error.
pub async fn wait_for<T, F, Fut>(deadline: Instant, what: &str, mut check: F) -> Result<T, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(TimedOut {
                what: what.to_string(),
                waited: now - start,
            });
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Waits until `condition` holds, or fails at `deadline` naming `what`.
pub async fn wait_until<F, Fut>(deadline: Instant, what: &str, mut condition: F) -> Result<(), TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(deadline, what, || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// [`wait_until`] for a thread outside the async runtime: blocks between checks.
pub fn wait_until_blocking(
    deadline: Instant,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Result<(), TimedOut> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if condition() {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(TimedOut {
                what: what.to_string(),
                waited: now - start,
            });
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn a_condition_that_comes_true_ends_the_wait() {
        let checks = AtomicU32::new(0);
        let r = wait_until_blocking(deadline(Duration::from_secs(5)), "the third check", || {
            checks.fetch_add(1, Ordering::Relaxed) >= 2
        });
        assert_eq!(r, Ok(()));
        assert_eq!(checks.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_timeout_says_what_was_awaited() {
        let e = wait_until_blocking(deadline(Duration::from_millis(20)), "pigs fly", || false)
            .expect_err("pigs do not fly");
        assert!(e.to_string().contains("waiting until pigs fly"), "{e}");
        assert!(e.waited >= Duration::from_millis(20));
    }

    #[tokio::test]
    async fn the_async_form_yields_the_awaited_value() {
        let checks = AtomicU32::new(0);
        let v = wait_for(deadline(Duration::from_secs(5)), "a value", || {
            let n = checks.fetch_add(1, Ordering::Relaxed);
            async move { (n >= 2).then_some(n) }
        })
        .await;
        assert_eq!(v, Ok(2));
        let e = wait_until(deadline(Duration::from_millis(20)), "never", || async { false }).await;
        assert!(e.is_err());
    }
}
