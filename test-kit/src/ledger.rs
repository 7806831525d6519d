//! Real append failures: a trigger in the ledger's SQLite file aborts the writer's INSERT, so the
//! ledger's commit fails the way a full disk or a broken file would make it fail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use airlock_ledger::{EntryKind, DB_FILE};

/// The message the refusing trigger aborts with.
pub const REFUSAL: &str = "refused by the test";

/// Appends to a ledger are refused until [`RefusedAppends::lift`].
#[derive(Debug)]
#[must_use = "appends stay refused until lifted"]
pub struct RefusedAppends {
    db: PathBuf,
    trigger: String,
}

impl RefusedAppends {
    /// Refuses every append to the ledger in `ledger_dir` (a ledger another handle has open).
    pub fn all(ledger_dir: &Path) -> rusqlite::Result<RefusedAppends> {
        RefusedAppends::install(ledger_dir, "refuse_all", "")
    }

    /// Refuses appends of entries of `kind` only.
    pub fn of_kind(ledger_dir: &Path, kind: EntryKind) -> rusqlite::Result<RefusedAppends> {
        let kind = kind.as_str();
        RefusedAppends::install(
            ledger_dir,
            &format!("refuse_{kind}"),
            &format!("WHEN NEW.kind = '{kind}'"),
        )
    }

    fn install(ledger_dir: &Path, trigger: &str, when: &str) -> rusqlite::Result<RefusedAppends> {
        let db = ledger_dir.join(DB_FILE);
        open(&db)?.execute_batch(&format!(
            "CREATE TRIGGER {trigger} BEFORE INSERT ON entries {when} \
             BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END;"
        ))?;
        Ok(RefusedAppends {
            db,
            trigger: trigger.to_string(),
        })
    }

    /// Appends work again.
    pub fn lift(self) -> rusqlite::Result<()> {
        open(&self.db)?.execute_batch(&format!("DROP TRIGGER {};", self.trigger))
    }
}

fn open(db: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}
