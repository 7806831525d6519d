//! JSON Lines export: `{"seq":N,"prev":"hex","hash":"hex","body":<canonical body verbatim>}` per line.

use std::io::Write;
use std::path::{Path, PathBuf};

use airlock_protocol::error_chain;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::error::LedgerError;
use crate::scan;

/// Appends one export line (with its newline) to `out`.
pub(crate) fn export_line(out: &mut Vec<u8>, seq: u64, prev: &[u8], hash: &[u8], body: &[u8]) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"prev\":\"");
    push_hex(out, prev);
    out.extend_from_slice(b"\",\"hash\":\"");
    push_hex(out, hash);
    out.extend_from_slice(b"\",\"body\":");
    out.extend_from_slice(body);
    out.extend_from_slice(b"}\n");
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

/// Lines are handed from the reading thread to the writer in chunks of about this many bytes.
const CHUNK_BYTES: usize = 256 * 1024;

/// Streams every entry, in seq order, to `out`. Returns the number of lines written.
///
/// A blocking thread walks the table and formats lines into chunks; this task writes them to `out`
/// as they come, so memory stays bounded by a few chunks.
pub(crate) async fn export(db: PathBuf, out: &mut (dyn Write + Send)) -> Result<u64, LedgerError> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    let producer = tokio::task::spawn_blocking(move || export_chunks(&db, tx));
    while let Some(chunk) = rx.recv().await {
        // On a write error, dropping `rx` stops the producer at its next chunk.
        out.write_all(&chunk).map_err(LedgerError::ExportWrite)?;
    }
    let lines = producer.await.map_err(LedgerError::Background)??;
    out.flush().map_err(LedgerError::ExportWrite)?;
    Ok(lines)
}

/// Walks the table and sends formatted lines in chunks. Blocking.
fn export_chunks(db: &Path, tx: mpsc::Sender<Vec<u8>>) -> Result<u64, LedgerError> {
    let conn = scan::open(db)?;
    let mut stmt = conn.prepare(scan::ALL_ENTRIES).map_err(scan::error(db))?;
    let mut rows = stmt.query([]).map_err(scan::error(db))?;
    let mut chunk = Vec::with_capacity(CHUNK_BYTES + 4096);
    let mut lines = 0u64;
    while let Some(row) = rows.next().map_err(scan::error(db))? {
        let Some(seq) = scan::seq(row) else {
            let reason = "seq is not a positive integer".to_owned();
            return Err(LedgerError::CorruptEntry {
                seq: lines + 1,
                reason,
            });
        };
        let corrupt = |reason: String| LedgerError::CorruptEntry { seq, reason };
        let column = |e: scan::ColumnError| corrupt(error_chain(&e));
        let prev = scan::bytes(row, scan::PREV, "prev").map_err(column)?;
        let hash = scan::bytes(row, scan::HASH, "hash").map_err(column)?;
        let body = scan::bytes(row, scan::BODY, "body").map_err(column)?;
        // The body is embedded verbatim, so it must be one JSON value on one line.
        if body.contains(&b'\n') || body.contains(&b'\r') {
            return Err(corrupt("body spans several lines".into()));
        }
        if let Err(e) = serde_json::from_slice::<&RawValue>(body) {
            return Err(corrupt(format!("body is not valid JSON: {e}")));
        }
        export_line(&mut chunk, seq, prev, hash, body);
        lines += 1;
        if chunk.len() >= CHUNK_BYTES {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_BYTES + 4096));
            if tx.blocking_send(full).is_err() {
                // The writer gave up (its error is what the caller sees).
                return Ok(lines);
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(chunk);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_layout() {
        let mut out = Vec::new();
        export_line(&mut out, 3, &[0; 2], &[0xab, 0xcd], br#"{"a":1}"#);
        assert_eq!(
            out,
            b"{\"seq\":3,\"prev\":\"0000\",\"hash\":\"abcd\",\"body\":{\"a\":1}}\n"
        );
    }
}
