//! Ledger entries read back as typed records: entries arrive as JSON (the operator API's
//! `/ledger`, `airlock ledger export`); tests match on [`Record`] variants, never on JSON keys.

use airlock_ledger::Entry;
use airlock_records::Record;
use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

/// Each JSON entry as an [`Entry`] with its body read as the [`Record`] of its kind, in order;
/// fails on the first that is not an entry or whose body does not fit its kind.
pub fn records(entries: &[Value]) -> Result<Vec<(Entry, Record)>> {
    entries.iter().map(record).collect()
}

/// One JSON entry as an [`Entry`] and its [`Record`].
pub fn record(entry: &Value) -> Result<(Entry, Record)> {
    let e = Entry::deserialize(entry).with_context(|| format!("not a ledger entry: {entry}"))?;
    let r = Record::of(&e).with_context(|| format!("ledger entry {}: {entry}", e.seq))?;
    Ok((e, r))
}
