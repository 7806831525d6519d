-- The audit chain. `body` holds the canonical JSON bytes the hash covers, verbatim; `ts_ms`,
-- `sandbox` and `kind` are copies for querying, checked against the body by verify.
CREATE TABLE entries (
    seq     INTEGER PRIMARY KEY NOT NULL,
    ts_ms   INTEGER NOT NULL,
    sandbox TEXT,
    kind    TEXT NOT NULL,
    body    TEXT NOT NULL,
    prev    BLOB NOT NULL,
    hash    BLOB NOT NULL
);

CREATE INDEX entries_sandbox_seq ON entries (sandbox, seq);

-- Append-only guard. It stops accidents, not an attacker with the file: verify catches those.
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN
    SELECT RAISE(ABORT, 'the audit ledger is append-only: entries cannot be updated');
END;

CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN
    SELECT RAISE(ABORT, 'the audit ledger is append-only: entries cannot be deleted');
END;
