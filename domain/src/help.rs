//! An agent asking for a human: what it needs help with.

use serde::{Deserialize, Serialize};

/// What kind of help an agent asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum HelpKind {
    /// Signing in: a password or a second factor the agent must not guess.
    Login,
    /// A CAPTCHA or another are-you-human check.
    Captcha,
    /// A step a human should confirm (a payment, a deletion).
    Confirm,
    /// Anything else.
    #[default]
    Other,
}

/// Longest reason an agent may give, in bytes.
pub const MAX_HELP_REASON: usize = 2_000;
/// Longest an agent may wait for a human, in ms.
pub const MAX_HELP_WAIT_MS: u64 = 60 * 60 * 1000;
/// How long an agent waits for a human unless it says otherwise, in ms.
pub const DEFAULT_HELP_WAIT_MS: u64 = 10 * 60 * 1000;
