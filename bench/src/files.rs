//! `airlock bench files`: moving files into and out of a real sandbox, two ways in the same run
//! against the same sandbox —
//!
//! - **raw**: the guest channel alone ([`GuestClient::put_file`] / [`GuestClient::get_path`]),
//!   from and into host memory;
//! - **api**: the product, over HTTP to a served host (`POST/GET /api/sandboxes/ID/files`,
//!   operator token) with a real ledger: an upload is spooled, hashed and synced beside the
//!   ledger, written in the guest, kept as a blob and recorded; a download streams out and is
//!   recorded.
//!
//! Each figure is the median of [`REPEATS`] rounds, the rounds interleaved (raw up, raw down, api
//! up, api down, then the folder both ways) so a slow moment of the host lands on every figure
//! alike. Every transfer is checked: what arrives has the SHA-256 of what was sent (uploads: the
//! guest's and the server's digest; downloads: the bytes received), and a folder's tar holds
//! each of its files byte for byte. Each round's file differs, so no blob is ever found already
//! kept. Times include setting up the transfer and, for the API, the HTTP exchange; the bench's
//! own hashing of what it received is done after the clock stops.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use airlock_host::{Host, HostOptions};
use airlock_ledger::Actor;
use airlock_protocol::{Content, PutFile};
use airlock_sandbox::{BackendChoice, GuestClient};
use airlock_supervisor::api::CreateRequest;
use airlock_supervisor::Config;
use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt;

use crate::percentile;

/// Rounds per figure; each figure is their median.
pub const REPEATS: usize = 3;
/// Files in the folder that is downloaded as a tar archive.
const DIR_FILES: usize = 8;
/// Where the benchmark's files go in the sandbox.
const RAW_FILE: &str = "/root/bench-files/raw.bin";
const API_FILE: &str = "/root/bench-files/api.bin";
const DIR: &str = "/root/bench-files/dir";

/// `n` bytes that no compressor or dedup would shortcut (xorshift64*), different per `seed`.
fn payload(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(n);
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MB/s (10⁶ bytes) of `bytes` moved in `secs`.
fn mb_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// Runs the benchmark on `backend` with files of `mib` MiB.
pub fn run(backend: BackendChoice, mib: u64) -> Result<Value> {
    ensure!(mib >= 1, "--mib must be at least 1");
    let size = usize::try_from(mib << 20).context("--mib is too large for this host")?;
    ensure!(
        mib << 20 <= airlock_supervisor::files::MAX_UPLOAD,
        "--mib {mib} is over the API's upload limit ({} MiB)",
        airlock_supervisor::files::MAX_UPLOAD >> 20
    );
    let facts = airlock_sandbox::HostFacts::probe();
    let placed = airlock_sandbox::place(backend, &facts)
        .with_context(|| format!("this host cannot run the {backend:?} backend"))?;
    let key = format!(
        "{}{}",
        placed.backend,
        placed.accel.map(|a| format!("_{a}")).unwrap_or_default()
    );
    let state = tempfile::tempdir().context("a scratch state directory")?;
    // The host reads its state directory from the environment; nothing else runs yet.
    std::env::set_var("AIRLOCK_STATE_DIR", state.path());
    let config = Config::new(airlock_host::keeper_command()?);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let host = Host::start(HostOptions {
            listen: "127.0.0.1:0".parse()?,
            policy: airlock_policy::Policy::new(
                airlock_policy::DEFAULT_POLICY,
                airlock_policy::Decision::Ask,
            )?,
            config,
            ui_dir: None,
            mcp_origins: Default::default(),
        })
        .await?;
        let figures = one(&host, backend, size)
            .await
            .with_context(|| format!("benchmarking file transfer on {key}"));
        host.shutdown().await;
        let mut out = serde_json::Map::new();
        out.insert(
            "host".into(),
            json!({
                "accel": facts.accel().0.to_string(),
                "file_bytes": size,
                "dir_files": DIR_FILES,
                "repeats": REPEATS,
                "api": "HTTP to an in-process served host (airlock_host::Host), operator token, real ledger",
            }),
        );
        out.insert(key, figures?);
        Ok(Value::Object(out))
    })
}

async fn one(host: &Host, backend: BackendChoice, size: usize) -> Result<Value> {
    let spec = CreateRequest {
        backend: Some(backend),
        profile: Some(airlock_guest_image::Profile::Minimal),
        ..CreateRequest::default()
    }
    .spec()?;
    let by = Actor::operator("bench");
    let info = host.sup.create_sandbox(spec, &by).await?;
    let id = info.id.clone();
    let result = figures(host, &id, size).await;
    host.sup.destroy_sandbox(&id, &by).await?;
    result
}

/// The served API, as an operator.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}?path={path}", self.base)
    }

    /// POSTs `body` to `path`; the server's digest of it, checked against `sha`.
    async fn upload(&self, path: &str, body: Vec<u8>, sha: &str) -> Result<()> {
        let size = body.len() as u64;
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .body(body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        ensure!(status.as_u16() == 201, "upload of {path}: {status} {v}");
        ensure!(
            v["sha256"] == sha && v["size"] == size,
            "upload of {path}: the server wrote {v}, not {size} bytes of SHA-256 {sha}"
        );
        Ok(())
    }

    /// GETs `path`; its bytes.
    async fn download(&self, path: &str, capacity: usize) -> Result<Vec<u8>> {
        let mut r = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = r.status();
        if !status.is_success() {
            bail!(
                "download of {path}: {status} {}",
                r.text().await.unwrap_or_default()
            );
        }
        let mut out = Vec::with_capacity(capacity);
        while let Some(chunk) = r.chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// Writes `data` at `path` over the raw channel; checks the guest's digest.
async fn raw_put(guest: &GuestClient, path: &str, data: Vec<u8>, sha: &str) -> Result<()> {
    let size = data.len() as u64;
    let d = guest
        .put_file(
            PutFile {
                path: path.to_string(),
                mode: 0o644,
                size,
                create_parents: true,
            },
            std::io::Cursor::new(data),
        )
        .await
        .with_context(|| format!("put_file {path}"))?;
    ensure!(
        d.size == size && d.sha256_hex() == sha,
        "put_file {path}: the guest wrote {} bytes of SHA-256 {}, not {size} of {sha}",
        d.size,
        d.sha256_hex()
    );
    Ok(())
}

/// Reads `path` over the raw channel; its bytes (the channel's own digest checked against the
/// guest's) and what it was.
async fn raw_get(guest: &GuestClient, path: &str, capacity: usize) -> Result<(Vec<u8>, Content)> {
    let mut dl = guest
        .get_path(path)
        .await
        .with_context(|| format!("get_path {path}"))?;
    let mut out = Vec::with_capacity(capacity);
    dl.read_to_end(&mut out)
        .await
        .with_context(|| format!("reading {path}"))?;
    let d = dl.digest().context("the download ended without a digest")?;
    ensure!(
        d.size == out.len() as u64,
        "get_path {path}: digest of {} bytes, {} read",
        d.size,
        out.len()
    );
    Ok((out, dl.content()))
}

/// Checks that `tar` holds exactly the files of `expected` (name → SHA-256), byte for byte.
fn check_tar(tar: &[u8], expected: &BTreeMap<String, String>) -> Result<()> {
    let mut found = BTreeMap::new();
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().context("reading the folder's tar")? {
        let mut entry = entry.context("a tar entry")?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("a tar entry without a name")?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        found.insert(name, sha256_hex(&bytes));
    }
    ensure!(
        &found == expected,
        "the folder's tar holds {found:?}, not {expected:?}"
    );
    Ok(())
}

async fn figures(host: &Host, id: &str, size: usize) -> Result<Value> {
    let session = host.sup.session(id).await?;
    let guest: Arc<GuestClient> = session.guest.clone();
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://{}/api/sandboxes/{id}/files", host.addr),
        token: host.tokens.operator_token.clone(),
    };

    // The folder: DIR_FILES files adding up to `size`, written once over the raw channel.
    let mut dir_files = BTreeMap::new();
    let part = (size / DIR_FILES).max(1);
    for i in 0..DIR_FILES {
        let data = payload(part, 1_000 + i as u64);
        let sha = sha256_hex(&data);
        raw_put(&guest, &format!("{DIR}/f{i}.bin"), data, &sha).await?;
        dir_files.insert(format!("f{i}.bin"), sha);
    }

    let (mut raw_up, mut raw_down, mut api_up, mut api_down) = (vec![], vec![], vec![], vec![]);
    let (mut raw_tar, mut api_tar) = (vec![], vec![]);
    let mut tar_bytes = 0;
    for round in 0..REPEATS as u64 {
        // Raw channel: upload, then download what was uploaded.
        let data = payload(size, 2 * round + 1);
        let sha = sha256_hex(&data);
        let t = Instant::now();
        raw_put(&guest, RAW_FILE, data, &sha).await?;
        raw_up.push(mb_s(size, t.elapsed().as_secs_f64()));

        let t = Instant::now();
        let (got, content) = raw_get(&guest, RAW_FILE, size).await?;
        raw_down.push(mb_s(got.len(), t.elapsed().as_secs_f64()));
        ensure!(
            matches!(content, Content::File { .. }),
            "{RAW_FILE} is not a file: {content:?}"
        );
        ensure!(sha256_hex(&got) == sha, "get_path {RAW_FILE}: wrong bytes");

        // The product: upload through the API, then download it through the API.
        let data = payload(size, 2 * round + 2);
        let sha = sha256_hex(&data);
        let t = Instant::now();
        api.upload(API_FILE, data, &sha).await?;
        api_up.push(mb_s(size, t.elapsed().as_secs_f64()));

        let t = Instant::now();
        let got = api.download(API_FILE, size).await?;
        api_down.push(mb_s(got.len(), t.elapsed().as_secs_f64()));
        ensure!(
            got.len() == size && sha256_hex(&got) == sha,
            "GET {API_FILE}: wrong bytes ({} received)",
            got.len()
        );

        // The folder as a tar archive, both ways.
        let t = Instant::now();
        let (tar, content) = raw_get(&guest, DIR, size + (1 << 20)).await?;
        raw_tar.push(mb_s(tar.len(), t.elapsed().as_secs_f64()));
        ensure!(
            matches!(content, Content::DirectoryTar { .. }),
            "{DIR} did not come as a tar: {content:?}"
        );
        check_tar(&tar, &dir_files)?;
        tar_bytes = tar.len();

        let t = Instant::now();
        let tar = api.download(DIR, size + (1 << 20)).await?;
        api_tar.push(mb_s(tar.len(), t.elapsed().as_secs_f64()));
        check_tar(&tar, &dir_files)?;
    }

    let med = |v: &[f64]| percentile(v, 0.5, 1).context("no samples");
    let ratio = |a: f64, b: f64| (a / b * 100.0).round() / 100.0;
    let (ru, rd, au, ad) = (med(&raw_up)?, med(&raw_down)?, med(&api_up)?, med(&api_down)?);
    let (rt, at) = (med(&raw_tar)?, med(&api_tar)?);
    let all = |v: &[f64]| v.iter().map(|x| (x * 10.0).round() / 10.0).collect::<Vec<_>>();
    Ok(json!({
        "raw_upload_mb_s": ru,
        "raw_download_mb_s": rd,
        "api_upload_mb_s": au,
        "api_download_mb_s": ad,
        "api_to_raw_upload_ratio": ratio(au, ru),
        "api_to_raw_download_ratio": ratio(ad, rd),
        "raw_dir_tar_download_mb_s": rt,
        "api_dir_tar_download_mb_s": at,
        "api_to_raw_dir_tar_download_ratio": ratio(at, rt),
        "dir_tar_bytes": tar_bytes,
        "rounds_mb_s": {
            "raw_upload": all(&raw_up),
            "raw_download": all(&raw_down),
            "api_upload": all(&api_up),
            "api_download": all(&api_down),
            "raw_dir_tar_download": all(&raw_tar),
            "api_dir_tar_download": all(&api_tar),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::{check_tar, payload, sha256_hex};

    #[test]
    fn payloads_are_sized_and_differ_by_seed() {
        assert_eq!(payload(13, 1).len(), 13);
        assert_eq!(payload(13, 1), payload(13, 1));
        assert_ne!(payload(64, 1), payload(64, 2));
    }

    #[test]
    fn a_tar_is_checked_file_by_file() -> anyhow::Result<()> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "dir/a.bin", &b"abc"[..])?;
        let tar = b.into_inner()?;
        let want = [("a.bin".to_string(), sha256_hex(b"abc"))].into_iter().collect();
        check_tar(&tar, &want)?;
        let wrong = [("a.bin".to_string(), sha256_hex(b"abd"))].into_iter().collect();
        assert!(check_tar(&tar, &wrong).is_err());
        Ok(())
    }
}
