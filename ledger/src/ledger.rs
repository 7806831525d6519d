//! The [`Ledger`] handle: a writer task for appends, a read-only pool for everything else.

use std::fs::{self, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, QueryBuilder, Row, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::blobs::BlobStore;
use crate::chain::VerifyReport;
use crate::digest::Digest;
use crate::entry::{Appended, Draft, Entry, Query, MAX_QUERY_LIMIT};
use crate::error::LedgerError;
use crate::writer::{self, Command, Prepared};

/// The database file inside a ledger directory.
pub const DB_FILE: &str = "ledger.db";
/// The blob directory inside a ledger directory.
pub const BLOBS_DIR: &str = "blobs";
/// The writer lock file inside a ledger directory.
pub const LOCK_FILE: &str = "ledger.lock";

/// Appends wait for room when this many requests are queued for the writer.
const QUEUE_DEPTH: usize = 8192;
/// Read connections (queries, verify, export run concurrently up to this).
const READ_CONNECTIONS: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A handle to an open ledger. Clones share one writer task and one read pool.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    db: PathBuf,
    blobs: BlobStore,
    pool: SqlitePool,
    /// `None` for a read-only handle.
    writer: Option<mpsc::Sender<Command>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("dir", &self.inner.dir)
            .field("read_only", &self.inner.writer.is_none())
            .finish()
    }
}

impl Ledger {
    /// Opens (creating if needed) the ledger in `dir`: `dir/ledger.db` (WAL, `synchronous=FULL`,
    /// migrated to the current schema) and `dir/blobs/`. Takes the writer lock `dir/ledger.lock`:
    /// one writing handle per directory, across processes, until [`Ledger::close`] (or until every
    /// clone is dropped and the writer task has finished).
    #[tracing::instrument(name = "ledger.open", skip_all, fields(dir = %dir.display()))]
    pub async fn open(dir: &Path) -> Result<Ledger, LedgerError> {
        let dir = dir.to_path_buf();
        let (dir, lock) = tokio::task::spawn_blocking(move || prepare_dir(dir))
            .await
            .map_err(LedgerError::Background)??;
        let db = dir.join(DB_FILE);
        let open_err = |source| LedgerError::Open {
            path: db.clone(),
            source,
        };
        let mut conn = SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .connect()
            .await
            .map_err(open_err)?;
        MIGRATOR
            .run(&mut conn)
            .await
            .map_err(|source| LedgerError::Migrate {
                path: db.clone(),
                source,
            })?;
        let head = writer::read_head(&mut conn).await?;
        let pool = read_pool(&db).await?;
        let blobs = BlobStore::new(dir.join(BLOBS_DIR));
        let sweeper = blobs.clone();
        let spool = dir.join("spool");
        tokio::task::spawn_blocking(move || {
            sweeper.sweep_tmp();
            // Uploads a crash interrupted before they became blobs.
            let _ = std::fs::remove_dir_all(spool);
        })
        .await
        .map_err(LedgerError::Background)?;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(writer::run(conn, rx, head, lock));
        tracing::debug!(head_seq = head.seq, "ledger open");
        Ok(Ledger {
            inner: Arc::new(Inner {
                dir,
                db,
                blobs,
                pool,
                writer: Some(tx),
            }),
        })
    }

    /// Opens an existing ledger for reading only (query, head, verify, export, read_blob): no lock,
    /// no migrations, nothing created. Appends and `put_blob` fail with [`LedgerError::ReadOnly`].
    /// Safe to use while another process has the ledger open for writing.
    #[tracing::instrument(name = "ledger.open_readonly", skip_all, fields(dir = %dir.display()))]
    pub async fn open_readonly(dir: &Path) -> Result<Ledger, LedgerError> {
        let db = dir.join(DB_FILE);
        if !tokio::fs::try_exists(&db).await.unwrap_or(false) {
            return Err(LedgerError::NotFound { path: db });
        }
        let pool = read_pool(&db).await?;
        sqlx::query("SELECT seq FROM entries LIMIT 1")
            .fetch_optional(&pool)
            .await
            .map_err(|source| LedgerError::Open {
                path: db.clone(),
                source,
            })?;
        let dir = dir.to_path_buf();
        let blobs = BlobStore::new(dir.join(BLOBS_DIR));
        Ok(Ledger {
            inner: Arc::new(Inner {
                dir,
                db,
                blobs,
                pool,
                writer: None,
            }),
        })
    }

    /// The ledger directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Appends one entry. Returns once the entry is committed durably (WAL, `synchronous=FULL`).
    ///
    /// Concurrent appends are group-committed: one transaction and one fsync for everything queued.
    /// Referenced frames must already be stored with [`Ledger::put_blob`]. If the returned future is
    /// dropped after the draft was handed to the writer, the entry may or may not be committed.
    #[tracing::instrument(name = "ledger.append", skip_all, fields(kind = %draft.kind))]
    pub async fn append(&self, draft: Draft) -> Result<Appended, LedgerError> {
        let prepared = self.prepare(draft)?;
        let mut done = self.submit(vec![prepared]).await?;
        done.pop().ok_or(LedgerError::Closed)
    }

    /// Appends several entries, contiguous and in order, in one transaction: all or none.
    #[tracing::instrument(name = "ledger.append_many", skip_all, fields(count = drafts.len()))]
    pub async fn append_many(&self, drafts: Vec<Draft>) -> Result<Vec<Appended>, LedgerError> {
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = drafts
            .into_iter()
            .map(|d| self.prepare(d))
            .collect::<Result<Vec<_>, _>>()?;
        self.submit(prepared).await
    }

    /// Validates and encodes a draft on the caller's task (keeps the writer task lean).
    fn prepare(&self, draft: Draft) -> Result<Prepared, LedgerError> {
        if self.inner.writer.is_none() {
            return Err(LedgerError::ReadOnly);
        }
        let ts_ms = i64::try_from(draft.ts_ms).map_err(|_| LedgerError::InvalidDraft {
            reason: format!(
                "ts_ms {} is larger than the largest storable timestamp",
                draft.ts_ms
            ),
        })?;
        for (field, frame) in [
            ("frame_before", draft.frame_before),
            ("frame_after", draft.frame_after),
        ] {
            if let Some(hash) = frame {
                // One stat of a local file: cheap enough to do on the async task.
                if !self.inner.blobs.contains(&hash) {
                    return Err(LedgerError::MissingBlob { field, hash });
                }
            }
        }
        let body = draft.canonical_bytes().map_err(LedgerError::Canonical)?;
        let body = String::from_utf8(body).map_err(|_| LedgerError::InvalidDraft {
            reason: "its canonical encoding is not UTF-8".into(),
        })?;
        Ok(Prepared {
            ts_ms,
            sandbox: draft.sandbox,
            kind: draft.kind,
            body,
        })
    }

    async fn submit(&self, entries: Vec<Prepared>) -> Result<Vec<Appended>, LedgerError> {
        let writer = self.inner.writer.as_ref().ok_or(LedgerError::ReadOnly)?;
        let (ack, done) = oneshot::channel();
        writer
            .send(Command::Append { entries, ack })
            .await
            .map_err(|_| LedgerError::Closed)?;
        done.await.map_err(|_| LedgerError::Closed)?
    }

    /// Stores a blob (a screenshot) under its SHA-256 and returns the hash. Durable when it returns
    /// (temporary file, fsync, rename, directory fsync); storing the same bytes again is a no-op.
    #[tracing::instrument(name = "ledger.put_blob", skip_all, fields(len = bytes.len()))]
    pub async fn put_blob(&self, bytes: &[u8]) -> Result<Digest, LedgerError> {
        if self.inner.writer.is_none() {
            return Err(LedgerError::ReadOnly);
        }
        let store = self.inner.blobs.clone();
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || store.put(&bytes))
            .await
            .map_err(LedgerError::Background)?
    }

    /// Where large content is written before it becomes a blob ([`Ledger::adopt_blob`]): on the
    /// blobs' filesystem. Created when asked for.
    pub fn spool_dir(&self) -> Result<PathBuf, LedgerError> {
        let dir = self.dir().join("spool");
        std::fs::create_dir_all(&dir).map_err(|source| LedgerError::BlobWrite {
            path: dir.clone(),
            source,
        })?;
        Ok(dir)
    }

    /// Keeps `file` (in [`Ledger::spool_dir`]), whose content hashes to `hash`, as that blob.
    #[tracing::instrument(name = "ledger.adopt_blob", skip_all, fields(%hash))]
    pub async fn adopt_blob(&self, file: PathBuf, hash: Digest) -> Result<(), LedgerError> {
        if self.inner.writer.is_none() {
            return Err(LedgerError::ReadOnly);
        }
        let store = self.inner.blobs.clone();
        tokio::task::spawn_blocking(move || store.adopt(&file, &hash))
            .await
            .map_err(LedgerError::Background)?
    }

    /// Reads a blob, checking that its content still hashes to its name.
    pub async fn read_blob(&self, hash: &Digest) -> Result<Vec<u8>, LedgerError> {
        let store = self.inner.blobs.clone();
        let hash = *hash;
        tokio::task::spawn_blocking(move || store.get(&hash))
            .await
            .map_err(LedgerError::Background)?
    }

    /// Opens a blob to be read in pieces (a kept upload may be a GiB), checked as
    /// [`Ledger::read_blob`] checks it, but without holding it in memory.
    pub async fn open_blob(&self, hash: &Digest) -> Result<std::fs::File, LedgerError> {
        let store = self.inner.blobs.clone();
        let hash = *hash;
        tokio::task::spawn_blocking(move || store.open(&hash))
            .await
            .map_err(LedgerError::Background)?
    }

    /// Entries matching `q`, in ascending seq, at most `min(q.limit, MAX_QUERY_LIMIT)` of them.
    /// A stored body that no longer parses is an error ([`LedgerError::CorruptEntry`]).
    #[tracing::instrument(name = "ledger.query", skip_all)]
    pub async fn query(&self, q: &Query) -> Result<Vec<Entry>, LedgerError> {
        let limit = q.limit.min(MAX_QUERY_LIMIT);
        let after = match q.after_seq.map(i64::try_from) {
            None => 0,
            Some(Ok(after)) => after,
            Some(Err(_)) => return Ok(Vec::new()),
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut sql = QueryBuilder::<Sqlite>::new("SELECT seq, body, prev, hash FROM entries WHERE seq > ");
        sql.push_bind(after);
        if let Some(sandbox) = &q.sandbox {
            sql.push(" AND sandbox = ").push_bind(sandbox.as_str());
        }
        if !q.kinds.is_empty() {
            let mut kinds = q.kinds.clone();
            kinds.sort_unstable();
            kinds.dedup();
            sql.push(" AND kind IN (");
            let mut list = sql.separated(", ");
            for kind in kinds {
                list.push_bind(kind.as_str());
            }
            sql.push(")");
        }
        sql.push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
        let rows = sql
            .build()
            .fetch_all(&self.inner.pool)
            .await
            .map_err(LedgerError::read)?;
        rows.iter().map(entry_from_row).collect()
    }

    /// The last committed entry, if any.
    pub async fn head(&self) -> Result<Option<Appended>, LedgerError> {
        let mut conn = self.inner.pool.acquire().await.map_err(LedgerError::read)?;
        let head = writer::read_head(&mut conn).await?;
        Ok((head.seq > 0).then_some(Appended {
            seq: head.seq,
            hash: head.hash,
        }))
    }

    /// Walks the whole chain (streaming) from a consistent snapshot: recomputes every hash, checks
    /// the links, seq continuity, the query columns against the bodies, and that every referenced
    /// blob exists and hashes to its name. Reports the first broken entry; `Err` only when the
    /// database cannot be read at all.
    ///
    /// Removing entries from the end leaves a valid, shorter chain: that can only be detected
    /// against a head anchored elsewhere (compare [`VerifyReport::head`]).
    #[tracing::instrument(name = "ledger.verify", skip_all, fields(dir = %self.inner.dir.display()))]
    pub async fn verify(&self) -> Result<VerifyReport, LedgerError> {
        self.ensure_open()?;
        let (db, blobs) = (self.inner.db.clone(), self.inner.blobs.clone());
        let report = tokio::task::spawn_blocking(move || crate::verify::verify_db(&db, blobs))
            .await
            .map_err(LedgerError::Background)??;
        match &report.first_broken {
            None => tracing::info!(
                entries = report.entries,
                blobs = report.blobs_checked,
                "ledger verified"
            ),
            Some(b) => tracing::warn!(seq = b.seq, reason = %b.reason, "ledger verification found a break"),
        }
        Ok(report)
    }

    /// Writes every entry as JSON Lines to `out`, streaming, in seq order:
    /// `{"seq":N,"prev":"hex","hash":"hex","body":{…}}` with the body embedded byte for byte, so
    /// [`crate::verify_jsonl`] can check it offline. Returns the number of entries written.
    /// `out` is written on the calling task (blocking writes are the caller's to choose).
    #[tracing::instrument(name = "ledger.export", skip_all, fields(dir = %self.inner.dir.display()))]
    pub async fn export(&self, out: &mut (dyn Write + Send)) -> Result<u64, LedgerError> {
        self.ensure_open()?;
        let n = crate::export::export(self.inner.db.clone(), out).await?;
        tracing::info!(entries = n, "ledger exported");
        Ok(n)
    }

    /// Walks (verify, export) read the file directly; refuse them once the handle is closed.
    fn ensure_open(&self) -> Result<(), LedgerError> {
        if self.inner.pool.is_closed() {
            return Err(LedgerError::Closed);
        }
        Ok(())
    }

    /// Commits everything appended before this call, stops the writer (releasing the lock) and
    /// closes the read pool. This closes the ledger for every clone of the handle.
    pub async fn close(self) {
        // Readers first, so that the writer's connection is the last one and SQLite checkpoints
        // the WAL into the database file as it closes.
        self.inner.pool.close().await;
        if let Some(writer) = &self.inner.writer {
            let (ack, done) = oneshot::channel();
            if writer.send(Command::Close { ack }).await.is_ok() {
                let _ = done.await;
            }
        }
    }
}

/// Creates the directories and takes the writer lock. Blocking.
fn prepare_dir(dir: PathBuf) -> Result<(PathBuf, fs::File), LedgerError> {
    let create = |path: &Path| {
        fs::create_dir_all(path).map_err(|source| LedgerError::CreateDir {
            path: path.to_path_buf(),
            source,
        })
    };
    create(&dir)?;
    let dir = dir.canonicalize().map_err(|source| LedgerError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    create(&dir.join(BLOBS_DIR))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| LedgerError::Lock {
            path: lock_path.clone(),
            source,
        })?;
    match lock.try_lock() {
        Ok(()) => Ok((dir, lock)),
        Err(TryLockError::WouldBlock) => Err(LedgerError::Locked { path: dir }),
        Err(TryLockError::Error(source)) => Err(LedgerError::Lock {
            path: lock_path,
            source,
        }),
    }
}

async fn read_pool(db: &Path) -> Result<SqlitePool, LedgerError> {
    let options = SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .busy_timeout(BUSY_TIMEOUT);
    SqlitePoolOptions::new()
        .max_connections(READ_CONNECTIONS)
        .connect_with(options)
        .await
        .map_err(|source| LedgerError::Open {
            path: db.to_path_buf(),
            source,
        })
}

fn entry_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Entry, LedgerError> {
    let seq: i64 = row.try_get(0).map_err(LedgerError::read)?;
    let seq = u64::try_from(seq).map_err(|_| LedgerError::CorruptEntry {
        seq: 0,
        reason: format!("seq {seq} is negative"),
    })?;
    let corrupt = |reason: String| LedgerError::CorruptEntry { seq, reason };
    let bytes = |i: usize, name: &str| {
        row.try_get::<&[u8], _>(i)
            .map_err(|e| corrupt(format!("column {name} cannot be read: {e}")))
    };
    let body = serde_json::from_slice(bytes(1, "body")?)
        .map_err(|e| corrupt(format!("body does not parse as an entry body: {e}")))?;
    let prev = Digest::from_slice(bytes(2, "prev")?).map_err(|e| corrupt(format!("prev: {e}")))?;
    let hash = Digest::from_slice(bytes(3, "hash")?).map_err(|e| corrupt(format!("hash: {e}")))?;
    Ok(Entry {
        seq,
        prev,
        hash,
        body,
    })
}
