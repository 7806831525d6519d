//! Shared pieces for Airlock's integration tests: a fake guest agent that speaks the real guest
//! protocol over a Unix socket ([`FakeGuest`]), a [`Supervisor`](airlock_supervisor::Supervisor)
//! supervising it over a real ledger in a scratch directory ([`Supervised`]), deadline-based
//! waits that say what they waited for ([`wait_until`], [`wait_for`], [`wait_until_blocking`]),
//! real ledger append failures ([`RefusedAppends`]), and the end-to-end harness the tests in
//! `tests/` share ([`e2e`]).
//!
//! Test code: crates list it under `[dev-dependencies]` (the benchmarks use its fake guest too).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use airlock_domain::Screen;
//! use airlock_test_kit::{Answers, Supervised};
//!
//! let fake = Supervised::start("fake", Answers::new(Screen { width: 32, height: 20 })).await?;
//! let shot = fake.supervisor.screenshot(&fake.sandbox).await?;
//! assert_eq!(shot.width, 32);
//! assert!(fake.guest.actions_seen().is_empty());
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod e2e;
mod guest;
mod ledger;
mod supervised;
mod wait;

pub use crate::guest::{Answers, FakeGuest, GuestWriteError, Reading};
pub use crate::ledger::{RefusedAppends, REFUSAL};
pub use crate::supervised::{NoImages, SuperviseError, Supervised};
pub use crate::wait::{deadline, wait_for, wait_until, wait_until_blocking, TimedOut};
