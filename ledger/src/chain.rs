//! The hash chain: entry hashes and the walk that checks a sequence of stored entries. Pure: no I/O.
//!
//! `hash = SHA-256(b"airlock-ledger/v1\n" || seq as u64 big-endian || prev (32 bytes) || body bytes)`,
//! where the body bytes are exactly the stored canonical body. The first entry has `seq = 1` and
//! `prev` = 32 zero bytes; each later entry's `prev` is the hash of the entry before it.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::entry::BodyView;

/// The domain-separation prefix of every entry hash.
pub const DOMAIN: &[u8] = b"airlock-ledger/v1\n";

/// The hash of the entry at `seq` whose predecessor hashed to `prev` and whose stored body is `body`.
pub fn entry_hash(seq: u64, prev: &Digest, body: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(seq.to_be_bytes());
    h.update(prev.0);
    h.update(body);
    Digest(h.finalize().into())
}

/// The first entry that failed verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Broken {
    /// The entry's sequence number (for a gap: the first missing one).
    pub seq: u64,
    /// What is wrong, in a sentence.
    pub reason: String,
}

/// The outcome of a verification walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct VerifyReport {
    /// Entries that verified intact (all of them when `first_broken` is `None`; the walk stops at
    /// the first break).
    pub entries: u64,
    /// Distinct blobs whose content was read and hashed.
    pub blobs_checked: u64,
    /// The hash of the last intact entry: anchor it elsewhere to detect a truncated tail later.
    pub head: Option<Digest>,
    /// The first broken entry by seq, if any.
    pub first_broken: Option<Broken>,
}

impl VerifyReport {
    /// True when nothing was found broken.
    pub fn is_ok(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// One stored entry as read back, before anything about it is trusted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredEntry<'a> {
    pub seq: u64,
    pub prev: &'a [u8],
    pub hash: &'a [u8],
    pub body: &'a [u8],
}

/// Walks stored entries in seq order, checking continuity, links and hashes.
///
/// An anchored walker starts at the genesis (seq 1, zero `prev`). An unanchored one walks a later
/// part of the chain: it takes its first entry's seq and `prev` as given, and whoever joins the
/// parts checks that link (see [`gap_reason`], [`link_reason`]).
#[derive(Debug, Clone)]
pub(crate) struct ChainWalker {
    next_seq: u64,
    prev: Digest,
    intact: u64,
    anchored: bool,
}

/// Why an entry with seq `found` cannot follow when `expected` was due.
pub(crate) fn gap_reason(expected: u64, found: u64) -> String {
    if found > expected {
        format!("seq gap: expected {expected}, found {found}")
    } else {
        format!("seq out of order: expected {expected}, found {found}")
    }
}

/// Why entry `seq`'s `prev` is wrong.
pub(crate) fn link_reason(seq: u64) -> String {
    if seq <= 1 {
        "prev of the first entry is not the all-zero genesis hash".to_owned()
    } else {
        format!("prev does not link to entry {}", seq - 1)
    }
}

impl ChainWalker {
    /// A walker from the genesis.
    pub fn new() -> ChainWalker {
        ChainWalker {
            next_seq: 1,
            prev: Digest::ZERO,
            intact: 0,
            anchored: true,
        }
    }

    /// A walker for a later part of the chain, anchored by its first intact entry.
    pub fn unanchored() -> ChainWalker {
        ChainWalker {
            next_seq: 0,
            prev: Digest::ZERO,
            intact: 0,
            anchored: false,
        }
    }

    /// The seq the next entry must have.
    pub fn expected_seq(&self) -> u64 {
        self.next_seq
    }

    /// Entries accepted so far.
    pub fn intact(&self) -> u64 {
        self.intact
    }

    /// The hash of the last accepted entry (the zero hash before any).
    pub fn last_hash(&self) -> Digest {
        self.prev
    }

    /// Checks seq continuity, the `prev` link and the hash, then parses the body.
    /// Does not advance: call [`ChainWalker::accept`] once every other check passed too.
    pub fn check<'a>(&self, e: &StoredEntry<'a>) -> Result<(Digest, BodyView<'a>), Broken> {
        let broken = |reason: String| Broken { seq: e.seq, reason };
        if self.anchored && e.seq != self.next_seq {
            return Err(Broken {
                seq: self.next_seq,
                reason: gap_reason(self.next_seq, e.seq),
            });
        }
        let prev = Digest::from_slice(e.prev)
            .map_err(|_| broken(format!("prev is {} bytes, not a 32-byte hash", e.prev.len())))?;
        if self.anchored && prev != self.prev {
            return Err(broken(link_reason(e.seq)));
        }
        let hash = Digest::from_slice(e.hash)
            .map_err(|_| broken(format!("hash is {} bytes, not a 32-byte hash", e.hash.len())))?;
        if entry_hash(e.seq, &prev, e.body) != hash {
            return Err(broken("hash does not match its contents".to_owned()));
        }
        let body = serde_json::from_slice::<BodyView<'a>>(e.body).map_err(|err| {
            broken(match err.classify() {
                serde_json::error::Category::Data => format!("body does not match the entry schema: {err}"),
                _ => format!("body is not valid JSON: {err}"),
            })
        })?;
        Ok((hash, body))
    }

    /// Records that entry `seq`, last passed to [`ChainWalker::check`], is intact.
    pub fn accept(&mut self, seq: u64, hash: Digest) {
        self.next_seq = seq + 1;
        self.prev = hash;
        self.intact += 1;
        self.anchored = true;
    }

    /// The report for the walk so far.
    pub fn report(&self, blobs_checked: u64, first_broken: Option<Broken>) -> VerifyReport {
        VerifyReport {
            entries: self.intact,
            blobs_checked,
            head: (self.intact > 0).then_some(self.prev),
            first_broken,
        }
    }
}

/// Columns stored beside the body for querying; they must agree with the hashed body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DerivedColumns<'a> {
    pub ts_ms: Result<i64, ()>,
    pub sandbox: Result<Option<&'a [u8]>, ()>,
    pub kind: Result<&'a [u8], ()>,
}

/// A column stored beside the body that disagrees with the hashed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("column {column} disagrees with the hashed body")]
pub(crate) struct ColumnMismatch {
    /// The column (`ts_ms`, `sandbox`, `kind`).
    pub column: &'static str,
}

/// Checks the derived columns against the body; the error names the first column that disagrees.
pub(crate) fn check_columns(body: &BodyView<'_>, cols: &DerivedColumns<'_>) -> Result<(), ColumnMismatch> {
    let disagrees = |column| ColumnMismatch { column };
    if cols.ts_ms.ok().and_then(|t| u64::try_from(t).ok()) != Some(body.ts_ms) {
        return Err(disagrees("ts_ms"));
    }
    if cols.sandbox != Ok(body.sandbox.as_deref().map(str::as_bytes)) {
        return Err(disagrees("sandbox"));
    }
    if cols.kind != Ok(body.kind.as_str().as_bytes()) {
        return Err(disagrees("kind"));
    }
    Ok(())
}

/// The blobs a body references, with the field that names each.
pub(crate) fn blob_refs(body: &BodyView<'_>) -> impl Iterator<Item = (&'static str, Digest)> {
    [
        ("frame_before", body.frame_before),
        ("frame_after", body.frame_after),
    ]
    .into_iter()
    .filter_map(|(field, d)| d.map(|d| (field, d)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::entry::{Actor, Draft, EntryKind};

    fn body(i: u64) -> Vec<u8> {
        Draft {
            ts_ms: 1000 + i,
            sandbox: Some(format!("sbx-{}", i % 3)),
            kind: EntryKind::ActionDecided,
            actor: Actor::default(),
            epoch: None,
            policy_hash: None,
            frame_before: None,
            frame_after: None,
            what: json!({"i": i}),
        }
        .canonical_bytes()
        .unwrap()
    }

    struct Row {
        seq: u64,
        prev: Vec<u8>,
        hash: Vec<u8>,
        body: Vec<u8>,
    }

    fn chain(n: u64) -> Vec<Row> {
        let mut prev = Digest::ZERO;
        (1..=n)
            .map(|seq| {
                let body = body(seq);
                let hash = entry_hash(seq, &prev, &body);
                let row = Row {
                    seq,
                    prev: prev.0.to_vec(),
                    hash: hash.0.to_vec(),
                    body,
                };
                prev = hash;
                row
            })
            .collect()
    }

    fn walk(rows: &[Row]) -> VerifyReport {
        let mut w = ChainWalker::new();
        for r in rows {
            let e = StoredEntry {
                seq: r.seq,
                prev: &r.prev,
                hash: &r.hash,
                body: &r.body,
            };
            match w.check(&e) {
                Ok((hash, _)) => w.accept(r.seq, hash),
                Err(b) => return w.report(0, Some(b)),
            }
        }
        w.report(0, None)
    }

    #[test]
    fn hash_layout_is_fixed() {
        // Pin the exact construction so an accidental change to the format is caught.
        let mut pre = DOMAIN.to_vec();
        pre.extend_from_slice(&5u64.to_be_bytes());
        pre.extend_from_slice(&[7u8; 32]);
        pre.extend_from_slice(b"{}");
        assert_eq!(entry_hash(5, &Digest([7; 32]), b"{}"), Digest::of(&pre));
        assert_eq!(DOMAIN, b"airlock-ledger/v1\n");
    }

    #[test]
    fn intact_chain_verifies() {
        let rows = chain(20);
        let r = walk(&rows);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(r.entries, 20);
        assert_eq!(r.head, Some(Digest::from_slice(&rows[19].hash).unwrap()));
        assert_eq!(walk(&[]).head, None);
    }

    #[test]
    fn each_kind_of_damage_is_named() {
        let mut rows = chain(10);
        rows[4].body[3] ^= 1;
        assert_eq!(
            walk(&rows).first_broken,
            Some(Broken {
                seq: 5,
                reason: "hash does not match its contents".into()
            })
        );

        let mut rows = chain(10);
        rows[6].prev[0] ^= 1;
        assert_eq!(
            walk(&rows).first_broken.unwrap().reason,
            "prev does not link to entry 6"
        );

        let mut rows = chain(10);
        rows.remove(3);
        let b = walk(&rows).first_broken.unwrap();
        assert_eq!((b.seq, b.reason.as_str()), (4, "seq gap: expected 4, found 5"));

        let mut rows = chain(10);
        rows[2].hash.truncate(5);
        let b = walk(&rows).first_broken.unwrap();
        assert_eq!(
            (b.seq, b.reason.as_str()),
            (3, "hash is 5 bytes, not a 32-byte hash")
        );

        let mut rows = chain(3);
        rows[0].prev = vec![1; 32];
        assert!(walk(&rows).first_broken.unwrap().reason.contains("genesis"));
        let r = walk(&rows);
        assert_eq!((r.entries, r.head), (0, None));
    }

    #[test]
    fn an_unanchored_walker_takes_its_first_entry_as_given() {
        let rows = chain(10);
        let mut w = ChainWalker::unanchored();
        for r in &rows[4..] {
            let e = StoredEntry {
                seq: r.seq,
                prev: &r.prev,
                hash: &r.hash,
                body: &r.body,
            };
            let (hash, _) = w.check(&e).unwrap();
            w.accept(r.seq, hash);
        }
        assert_eq!((w.intact(), w.expected_seq()), (6, 11));
        assert_eq!(w.last_hash(), Digest::from_slice(&rows[9].hash).unwrap());
        // Once anchored, it checks links and seqs as usual.
        let r = &rows[3];
        let e = StoredEntry {
            seq: r.seq,
            prev: &r.prev,
            hash: &r.hash,
            body: &r.body,
        };
        assert_eq!(
            w.check(&e).unwrap_err().reason,
            "seq out of order: expected 11, found 4"
        );
    }

    #[test]
    fn a_correctly_hashed_but_invalid_body_is_reported() {
        for (body, want) in [
            (&b"{not json"[..], "body is not valid JSON"),
            (b"{}", "body does not match"),
        ] {
            let hash = entry_hash(1, &Digest::ZERO, body);
            let row = Row {
                seq: 1,
                prev: vec![0; 32],
                hash: hash.0.to_vec(),
                body: body.to_vec(),
            };
            let b = walk(&[row]).first_broken.unwrap();
            assert!(b.reason.starts_with(want), "{}", b.reason);
        }
    }

    #[test]
    fn columns_must_agree() {
        let bytes = body(4);
        let view: BodyView<'_> = serde_json::from_slice(&bytes).unwrap();
        let good = DerivedColumns {
            ts_ms: Ok(1004),
            sandbox: Ok(Some(b"sbx-1")),
            kind: Ok(b"action_decided"),
        };
        assert_eq!(check_columns(&view, &good), Ok(()));
        let bad = DerivedColumns {
            sandbox: Ok(Some(b"sbx-2")),
            ..good
        };
        let e = check_columns(&view, &bad).unwrap_err();
        assert_eq!(e, ColumnMismatch { column: "sandbox" });
        assert_eq!(e.to_string(), "column sandbox disagrees with the hashed body");
        let bad = DerivedColumns {
            sandbox: Ok(None),
            ..good
        };
        assert!(check_columns(&view, &bad).is_err());
        let bad = DerivedColumns {
            ts_ms: Err(()),
            ..good
        };
        let e = check_columns(&view, &bad).unwrap_err();
        assert_eq!(e.to_string(), "column ts_ms disagrees with the hashed body");
        let bad = DerivedColumns {
            kind: Ok(b"egress"),
            ..good
        };
        assert!(check_columns(&view, &bad).is_err());
    }
}
