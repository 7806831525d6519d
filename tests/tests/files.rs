//! Files into and out of real sandboxes through `airlock serve`'s operator API and the CLI: uploads
//! arrive whole and land on the ledger with their blob, a folder comes out as a tar, bad paths and
//! oversized or broken-off uploads leave nothing behind, and a watcher may not look.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use airlock_ledger::Digest;
use airlock_records::{Direction, FileTransfer, Record, TransferContent};
use airlock_test_kit::e2e::records::records;
use airlock_test_kit::e2e::serve::{computer, Serve};
use airlock_test_kit::e2e::{poll_async, Env};
use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `airlock serve` with one minimal sandbox, and an HTTP client for its file routes.
struct Files {
    // Dropped before `env`: the server goes before its state directory.
    serve: Serve,
    env: Env,
    sb: String,
    http: reqwest::Client,
}

impl Files {
    async fn start(name: &str, backend: &str) -> Result<Files> {
        let env = Env::new(name);
        let serve = Serve::start(&env, &["--backend", backend, "--profile", "minimal"])?;
        let sb = serve.only_sandbox().await?;
        Ok(Files {
            serve,
            env,
            sb,
            http: reqwest::Client::new(),
        })
    }

    /// `/api/sandboxes/ID/TAIL?path=PATH`, the path percent-encoded.
    fn url_for(&self, tail: &str, path: &str) -> String {
        format!(
            "{}/api/sandboxes/{}/{tail}?path={}",
            self.serve.base,
            self.sb,
            encode(path)
        )
    }

    /// POSTs `body` to `path`; (status, JSON answer).
    async fn upload(&self, path: &str, body: Vec<u8>) -> Result<(u16, Value)> {
        let r = self
            .http
            .post(self.url_for("files", path))
            .bearer_auth(&self.serve.operator_token)
            .body(body)
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
    }

    /// GETs `path`: (status, content type, bytes).
    async fn download(&self, path: &str) -> Result<(u16, String, Vec<u8>)> {
        let r = self
            .http
            .get(self.url_for("files", path))
            .bearer_auth(&self.serve.operator_token)
            .send()
            .await?;
        let status = r.status().as_u16();
        let ty = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok((status, ty, r.bytes().await?.to_vec()))
    }

    /// GETs the listing of `path` with `token`: (status, JSON answer).
    async fn list_as(&self, token: &str, path: &str) -> Result<(u16, Value)> {
        let r = self
            .http
            .get(self.url_for("files/list", path))
            .bearer_auth(token)
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
    }

    /// `sh -c script` in the sandbox through the operator's CLI (not the agent's gate).
    fn sh(&self, script: &str) -> Result<String> {
        self.env.guest_sh(&self.sb, script)
    }

    /// Names in `/root` (hidden ones too), sorted.
    fn root_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.sh("ls -A /root")?.lines().map(str::to_string).collect();
        names.sort();
        Ok(names)
    }

    /// The sandbox's `file_transfer` records, in order.
    async fn transfers(&self) -> Result<Vec<FileTransfer>> {
        Ok(records(&self.serve.ledger(Some(&self.sb)).await?)?
            .into_iter()
            .filter_map(|(_, r)| match r {
                Record::FileTransfer(t) => Some(t),
                _ => None,
            })
            .collect())
    }

    /// The upload spool beside the ledger: files an upload in progress is being written to.
    fn spooled(&self) -> Result<Vec<PathBuf>> {
        let dir = self.env.root.join("ledger").join("spool");
        match std::fs::read_dir(&dir) {
            Ok(entries) => Ok(entries.flatten().map(|e| e.path()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(e).with_context(|| format!("read {}", dir.display())),
        }
    }

    /// A fresh host-side directory for this test's own files (removed with the state dir).
    fn scratch(&self, name: &str) -> Result<PathBuf> {
        let dir = self.env.root.join("scratch").join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Starts an upload of `declared` bytes to `path` over raw HTTP and sends the first `sent`
    /// of them; the rest never comes unless the caller writes it to the returned stream.
    async fn begin_upload(&self, path: &str, declared: usize, sent: usize) -> Result<tokio::net::TcpStream> {
        let head = format!(
            "POST /api/sandboxes/{}/files?path={} HTTP/1.1\r\nHost: {}\r\n\
             Authorization: Bearer {}\r\nContent-Length: {declared}\r\n\r\n",
            self.sb,
            encode(path),
            self.addr(),
            self.serve.operator_token,
        );
        let mut s = tokio::net::TcpStream::connect(self.addr()).await?;
        s.write_all(head.as_bytes()).await?;
        s.write_all(&noise(sent, 7)).await?;
        s.flush().await?;
        Ok(s)
    }

    /// `host:port` of the server, for raw HTTP.
    fn addr(&self) -> String {
        self.serve.base.trim_start_matches("http://").to_string()
    }
}

/// Percent-encodes all but unreserved characters and `/`.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `len` bytes that do not compress or repeat (xorshift64*), the same for the same `seed`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256(bytes: &[u8]) -> String {
    Digest::of(bytes).to_hex()
}

/// The first word of `sha256sum`'s output.
fn first_word(out: &str) -> String {
    out.split_whitespace().next().unwrap_or_default().to_string()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, 90th percentile and maximum, in ms.
fn summary(samples: &[Duration]) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    let mut s: Vec<f64> = samples.iter().copied().map(millis).collect();
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    format!(
        "n={} median={:.1} ms p90={:.1} ms max={:.1} ms",
        s.len(),
        at(0.5),
        at(0.9),
        s[s.len() - 1]
    )
}

/// One agent `type` action through the gateway (allowed by the default policy), timed.
async fn typed(agent: &airlock_agents::Gateway, sb: &str) -> Result<Duration> {
    let start = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        agent.call("computer", computer(sb, json!({"action": "type", "text": "x"}))),
    )
    .await
    .context("a typing action took over two minutes")??;
    ensure!(
        !out.is_error,
        "the typing action failed: {}",
        out.texts.join("\n")
    );
    Ok(start.elapsed())
}

/// Sends a raw HTTP/1.1 request head (and `body`) to the server, then reads the answer until the
/// server closes or `timeout` passes.
async fn raw_request(addr: &str, head: &str, body: &[u8], timeout: Duration) -> Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(timeout, s.read_to_end(&mut answer)).await;
    if read.is_err() && answer.is_empty() {
        bail!("no answer within {timeout:?}");
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

async fn fifty_mib_upload(backend: &str, name: &str) -> Result<()> {
    let f = Files::start(name, backend).await?;
    let agent = f.serve.agent().await?;
    // Typing with nothing else going on (the first call warms the path up and is not counted).
    typed(&agent, &f.sb).await?;
    let mut idle = vec![];
    for _ in 0..15 {
        idle.push(typed(&agent, &f.sb).await?);
    }

    let data = noise(50 << 20, 0x5eed);
    let host_sha = sha256(&data);
    let size = data.len() as u64;
    let (http, url, token) = (
        f.http.clone(),
        f.url_for("files", "/root/big.bin"),
        f.serve.operator_token.clone(),
    );
    let upload = tokio::spawn(async move {
        let start = Instant::now();
        let r = http.post(url).bearer_auth(token).body(data).send().await?;
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        Ok::<_, anyhow::Error>((status, v, start.elapsed()))
    });
    // The agent keeps typing while the file goes in: each action is judged and performed.
    let mut busy = vec![];
    while !upload.is_finished() {
        busy.push(typed(&agent, &f.sb).await?);
    }
    let (status, written, took) = upload.await??;
    assert_eq!(status, 201, "{written}");
    assert_eq!(
        written,
        json!({"sandbox": f.sb, "path": "/root/big.bin", "size": size, "sha256": host_sha})
    );
    let mib_s = (size as f64 / (1 << 20) as f64) / took.as_secs_f64();
    println!(
        "[{backend}] 50 MiB upload: {:.2} s, {mib_s:.1} MiB/s",
        took.as_secs_f64()
    );
    println!("[{backend}] agent typing, idle:           {}", summary(&idle));
    println!("[{backend}] agent typing, during upload:  {}", summary(&busy));

    // The guest's own hash of the file it holds.
    let inside = first_word(&f.sh("sha256sum /root/big.bin")?);
    assert_eq!(inside, host_sha, "the file in the sandbox is the file sent");

    // On the ledger, with the upload kept as its blob.
    let t = f.transfers().await?;
    let rec = t
        .iter()
        .find(|t| t.path == "/root/big.bin")
        .with_context(|| format!("no file_transfer for /root/big.bin in {t:?}"))?;
    assert_eq!(
        rec,
        &FileTransfer {
            direction: Direction::In,
            path: "/root/big.bin".into(),
            content: TransferContent::File,
            size,
            sha256: Some(host_sha.clone()),
            blob: Some(host_sha.clone()),
            via: "api".into(),
            error: None,
        }
    );
    let blob = f
        .http
        .get(format!("{}/api/blobs/{host_sha}", f.serve.base))
        .bearer_auth(&f.serve.operator_token)
        .send()
        .await?;
    assert_eq!(blob.status(), 200);
    let kept = blob.bytes().await?;
    assert_eq!(
        (kept.len() as u64, sha256(&kept)),
        (size, host_sha),
        "the blob is the upload"
    );
    f.env.ledger_verifies()?;
    Ok(())
}

/// A 50 MiB upload into a gVisor sandbox arrives whole (the guest's sha256sum equals the host's),
/// is on the ledger with its blob, and the agent's typing keeps being judged and performed while
/// it goes in (latencies with and without the upload are printed, not asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_upload_arrives_whole_and_is_kept_on_the_ledger_while_the_agent_types() -> Result<()> {
    fifty_mib_upload("gvisor", "files-50m-gv").await
}

/// The same into a QEMU microVM (TCG here: slow, but whole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_upload_arrives_whole_in_a_microvm() -> Result<()> {
    fifty_mib_upload("microvm", "files-50m-vm").await
}

/// A folder written in the sandbox comes out as a tar archive holding its files, byte for byte,
/// and the download is on the ledger as a folder archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloading_a_folder_gives_a_tar_of_its_files() -> Result<()> {
    let f = Files::start("files-tar", "gvisor").await?;
    let rand_sha = first_word(
        &f.sh("mkdir -p /root/out/sub && printf 'alpha\\n' > /root/out/a.txt \
         && printf beta > /root/out/sub/b.txt \
         && head -c 200000 /dev/urandom > /root/out/sub/rand.bin \
         && sha256sum /root/out/sub/rand.bin")?,
    );
    let (status, ty, tar) = f.download("/root/out").await?;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&tar));
    assert_eq!(ty, "application/x-tar");

    let host = f.scratch("tar")?;
    let archive = host.join("out.tar");
    std::fs::write(&archive, &tar)?;
    let x = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&host)
        .output()?;
    ensure!(
        x.status.success(),
        "tar -xf: {}",
        String::from_utf8_lossy(&x.stderr)
    );
    let out = host.join("out");
    assert_eq!(std::fs::read(out.join("a.txt"))?, b"alpha\n");
    assert_eq!(std::fs::read(out.join("sub/b.txt"))?, b"beta");
    assert_eq!(sha256(&std::fs::read(out.join("sub/rand.bin"))?), rand_sha);

    let t = poll_async(
        "the download's ledger record",
        Duration::from_secs(30),
        || async {
            Ok(f.transfers()
                .await?
                .into_iter()
                .find(|t| t.path == "/root/out" && t.direction == Direction::Out))
        },
    )
    .await?;
    assert_eq!(t.content, TransferContent::FolderArchive);
    assert_eq!(t.size, tar.len() as u64, "{t:?}");
    assert_eq!(t.sha256.as_deref(), Some(sha256(&tar).as_str()), "{t:?}");
    assert_eq!(t.error, None);
    Ok(())
}

/// A 0-byte upload makes an empty file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_upload_makes_an_empty_file() -> Result<()> {
    let f = Files::start("files-empty", "gvisor").await?;
    let (status, v) = f.upload("/root/empty", vec![]).await?;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["size"], 0);
    assert_eq!(v["sha256"], sha256(b""));
    assert_eq!(f.sh("test -f /root/empty && stat -c %s /root/empty")?.trim(), "0");
    let (status, _, bytes) = f.download("/root/empty").await?;
    assert_eq!((status, bytes.len()), (200, 0));
    Ok(())
}

/// A declared Content-Length of 4 GiB is refused with 413 and a message naming the limit, before
/// any of the body is read, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4_gib_upload_is_refused_413_before_anything_is_written() -> Result<()> {
    let f = Files::start("files-4g", "gvisor").await?;
    let before = f.root_names()?;
    let head = format!(
        "POST /api/sandboxes/{}/files?path=/root/huge.bin HTTP/1.1\r\nHost: {}\r\n\
         Authorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        f.sb,
        f.addr(),
        f.serve.operator_token,
        4u64 << 30
    );
    // Only a few bytes of the 4 GiB follow: the answer must come from the header alone.
    let answer = raw_request(&f.addr(), &head, b"just the start", Duration::from_secs(30)).await?;
    let status_line = answer.lines().next().unwrap_or_default();
    assert!(status_line.contains(" 413 "), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body = body.trim();
    // The body may be chunked: find the JSON object in it.
    let json_text =
        &body[body.find('{').context("no JSON body")?..=body.rfind('}').context("no JSON body")?];
    let err: Value = serde_json::from_str(json_text)?;
    assert_eq!(err["code"], "too_large", "{err}");
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("4294967296 bytes") && msg.contains("at most 1073741824 bytes (1 GiB)"),
        "{msg}"
    );
    assert_eq!(f.root_names()?, before, "nothing was written in the sandbox");
    assert_eq!(f.spooled()?, Vec::<PathBuf>::new(), "nothing was spooled");
    Ok(())
}

/// Relative paths, `..`, a NUL byte and /proc are refused with 400 and a message naming the path,
/// for uploads, downloads and listings alike; nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_are_refused_400_naming_the_path() -> Result<()> {
    let f = Files::start("files-paths", "gvisor").await?;
    let before = f.root_names()?;
    for (path, named) in [
        ("root/x", "\"root/x\""),
        ("/root/../root/x", "\"/root/../root/x\""),
        ("/root/a\0b", "/root/a"),
        ("/proc/self/environ", "\"/proc/self/environ\""),
    ] {
        let (status, v) = f.upload(path, b"data".to_vec()).await?;
        assert_eq!(status, 400, "upload {path:?}: {v}");
        assert_eq!(v["code"], "invalid_file_request", "upload {path:?}: {v}");
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(msg.contains(named), "upload {path:?}: {msg}");

        let (status, _, body) = f.download(path).await?;
        assert_eq!(status, 400, "download {path:?}");
        let v: Value = serde_json::from_slice(&body)?;
        assert!(
            v["message"].as_str().unwrap_or_default().contains(named),
            "download {path:?}: {v}"
        );

        let (status, v) = f.list_as(&f.serve.operator_token, path).await?;
        assert_eq!(status, 400, "list {path:?}: {v}");
    }
    assert_eq!(f.root_names()?, before, "nothing was written in the sandbox");
    Ok(())
}

/// A client that goes away in the middle of its upload leaves no file and no temporary file in
/// the sandbox, and nothing in the spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_upload_leaves_nothing_behind() -> Result<()> {
    let f = Files::start("files-abort", "gvisor").await?;
    let before = f.root_names()?;
    let s = f.begin_upload("/root/partial.bin", 16 << 20, 4 << 20).await?;
    // The server has started taking it in…
    poll_async(
        "the upload to reach the spool",
        Duration::from_secs(30),
        || async {
            let spooled = f.spooled()?;
            let size: u64 = spooled
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum();
            Ok((size > 0).then_some(()))
        },
    )
    .await?;
    // …and the client goes away with three quarters unsent.
    drop(s);
    poll_async("the spool to be emptied", Duration::from_secs(30), || async {
        Ok(f.spooled()?.is_empty().then_some(()))
    })
    .await?;
    let after = f.root_names()?;
    assert_eq!(after, before, "no partial.bin and no .airlock-put.* temporary");
    assert!(
        f.sh("test -e /root/partial.bin && echo there || echo absent")?
            .trim()
            == "absent",
        "the target does not exist"
    );
    // The server is fine: the next upload goes through.
    let (status, v) = f.upload("/root/after.bin", b"ok".to_vec()).await?;
    assert_eq!(status, 201, "{v}");
    Ok(())
}

/// Four uploads under way at once take all the places: a fifth is refused 503 naming the limit,
/// with nothing written, and once they end an upload goes through again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_upload_at_once_is_refused_until_one_ends() -> Result<()> {
    let f = Files::start("files-busy", "gvisor").await?;
    let before = f.root_names()?;
    let mut slow = Vec::new();
    for i in 0..4 {
        slow.push(
            f.begin_upload(&format!("/root/slow{i}.bin"), 8 << 20, 64 << 10)
                .await?,
        );
    }
    poll_async("four uploads in the spool", Duration::from_secs(30), || async {
        Ok((f.spooled()?.len() == 4).then_some(()))
    })
    .await?;
    let (status, v) = f.upload("/root/fifth.bin", b"fifth".to_vec()).await?;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["code"], "busy", "{v}");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(message.contains("4 uploads are already under way"), "{message}");
    drop(slow);
    poll_async("the spool to be emptied", Duration::from_secs(30), || async {
        Ok(f.spooled()?.is_empty().then_some(()))
    })
    .await?;
    assert_eq!(f.root_names()?, before, "none of the five was written");
    let (status, v) = f.upload("/root/after.bin", b"ok".to_vec()).await?;
    assert_eq!(status, 201, "{v}");
    Ok(())
}

/// `airlock sandbox put` and `get` round-trip a file byte for byte through the running server,
/// and both transfers are on the ledger as the CLI's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_put_and_get_round_trip_a_file_through_a_running_serve() -> Result<()> {
    let f = Files::start("files-cli", "gvisor").await?;
    let host = f.scratch("cli")?;
    let src = host.join("payload.bin");
    let data = noise(3 << 20, 42);
    std::fs::write(&src, &data)?;
    let src_s = src.to_str().context("utf-8 path")?;
    let put = f.env.airlock(&[
        "sandbox",
        "put",
        &f.sb,
        src_s,
        "/root/in/",
        "--server",
        &f.serve.base,
    ]);
    ensure!(
        put.status.success(),
        "put: {}",
        String::from_utf8_lossy(&put.stderr)
    );
    let written: Value = serde_json::from_slice(&put.stdout)?;
    assert_eq!(written["path"], "/root/in/payload.bin", "{written}");
    assert_eq!(written["sha256"], sha256(&data));
    assert_eq!(
        first_word(&f.sh("sha256sum /root/in/payload.bin")?),
        sha256(&data)
    );

    let back = host.join("back.bin");
    let get = f.env.airlock(&[
        "sandbox",
        "get",
        &f.sb,
        "/root/in/payload.bin",
        "-o",
        back.to_str().context("utf-8 path")?,
        "--server",
        &f.serve.base,
    ]);
    ensure!(
        get.status.success(),
        "get: {}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert!(std::fs::read(&back)? == data, "the file came back byte for byte");
    let t = poll_async(
        "both transfers on the ledger",
        Duration::from_secs(30),
        || async {
            let t = f.transfers().await?;
            Ok((t.len() >= 2).then_some(t))
        },
    )
    .await?;
    let dirs: Vec<(Direction, &str, u64)> =
        t.iter().map(|t| (t.direction, t.path.as_str(), t.size)).collect();
    assert_eq!(
        dirs,
        [
            (Direction::In, "/root/in/payload.bin", data.len() as u64),
            (Direction::Out, "/root/in/payload.bin", data.len() as u64)
        ]
    );
    // Both complete, with the same SHA-256 (the download's taken from the guest's closing digest).
    for x in &t {
        assert_eq!(x.error, None, "{x:?}");
    }
    assert!(t[0].sha256.is_some() && t[0].sha256 == t[1].sha256, "{t:?}");
    Ok(())
}

/// A watcher may not list, download or upload files: each is refused with 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_cannot_list_read_or_write_files() -> Result<()> {
    let f = Files::start("files-watch", "gvisor").await?;
    let out = f.env.airlock(&["operator", "add", "wanda", "--role", "watcher"]);
    ensure!(
        out.status.success(),
        "operator add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: Value = serde_json::from_slice(&out.stdout)?;
    let token = added["token"].as_str().context("watcher token")?.to_string();
    // The server picks the new operator up from the token file.
    let (status, v) = poll_async("the watcher to be known", Duration::from_secs(30), || async {
        let (status, v) = f.list_as(&token, "/root").await?;
        Ok((status != 401).then_some((status, v)))
    })
    .await?;
    assert_eq!(status, 403, "list: {v}");
    let r = f
        .http
        .get(f.url_for("files", "/etc/hostname"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403, "download");
    let r = f
        .http
        .post(f.url_for("files", "/root/from-watcher"))
        .bearer_auth(&token)
        .body("no")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403, "upload");
    assert!(
        f.sh("test -e /root/from-watcher && echo there || echo absent")?
            .trim()
            == "absent",
        "nothing was written"
    );
    Ok(())
}
