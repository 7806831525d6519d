//! File transfer end to end: the host's `GuestClient`, through a keeper's client relay, against
//! the real agent binary on a private Xvfb, on this machine's file system.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_protocol::{
    encode_frame, Content, ErrorKind, FileErrorKind, FrameDecoder, GuestMessage, HostMessage, PutFile, Reply,
    Request, PROTOCOL_VERSION,
};
use airlock_sandbox::{keeper, GuestClient, GuestMux, TransferError};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Kills its processes when the test ends, however it ends.
struct Kill(Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An agent on a fresh Xvfb, behind a keeper relay; the client talks to the keeper.
fn agent(dir: &Path) -> (Kill, GuestClient) {
    let mut xvfb = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-nolisten",
            "tcp",
            "-screen",
            "0",
            "640x480x24",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb starts");
    let mut line = String::new();
    BufReader::new(xvfb.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("Xvfb says its display once ready");
    let display = format!(":{}", line.trim());
    let agent_sock = dir.join("agent.sock");
    let listener = UnixListener::bind(&agent_sock).expect("a socket for the agent");
    let agent = Command::new(env!("CARGO_BIN_EXE_airlock-guest-agent"))
        .args(["--channel", &format!("unix:{}", agent_sock.display())])
        .args(["--fbdir", &dir.join("fb").display().to_string()])
        .env("DISPLAY", &display)
        .stderr(Stdio::null())
        .spawn()
        .expect("the agent starts");
    let kill = Kill(vec![agent, xvfb]);
    let (conn, _) = listener.accept().expect("the agent connects");
    let reader = conn.try_clone().expect("a clone");
    let mux = GuestMux::start(Box::new(reader), Box::new(conn), "files-test".into());
    let info = mux
        .hello("files-test", Duration::from_secs(30))
        .expect("the agent answers hello");
    let keeper_sock = dir.join("keeper.sock");
    keeper::serve_clients(
        UnixListener::bind(&keeper_sock).expect("a keeper socket"),
        mux,
        info,
    );
    let client = GuestClient::over_unix(UnixStream::connect(&keeper_sock).expect("connects"), "files-test")
        .expect("the keeper answers hello");
    (kill, client)
}

fn s(p: &Path) -> String {
    p.to_str().expect("a UTF-8 temp path").to_string()
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_in_and_out_through_the_keeper_and_a_dropped_put_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let (_kill, client) = agent(tmp.path());
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let root: PathBuf = tmp.path().join("share");
    let target = root.join("deep/new.bin");

    // In, with parents made, checked against the host's own digest.
    let put = client.put_file(
        PutFile {
            path: s(&target),
            mode: 0o600,
            size: data.len() as u64,
            create_parents: true,
        },
        std::io::Cursor::new(data.clone()),
    );
    let written = put.await.expect("written");
    assert_eq!(written.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
    assert_eq!(std::fs::read(&target).expect("on disk"), data);
    assert_eq!(
        std::fs::metadata(&target).expect("metadata").permissions().mode() & 0o777,
        0o600
    );

    // Out again, with a listing running beside it.
    let mut download = client.get_path(&s(&target)).await.expect("opened");
    assert!(matches!(download.content(), Content::File { size, .. } if size == data.len() as u64));
    let listing = client
        .list_dir(&s(&root.join("deep")), 100)
        .await
        .expect("listed");
    assert_eq!(listing.entries.len(), 1);
    assert_eq!(listing.entries[0].name, "new.bin");
    let mut back = Vec::new();
    download.read_to_end(&mut back).await.expect("read whole");
    assert_eq!(back, data);
    assert_eq!(download.digest().map(|d| d.sha256), Some(written.sha256));

    // A directory comes as a tar archive.
    symlink("/etc/passwd", root.join("deep/link")).expect("a symlink");
    let mut tar = client.get_path(&s(&root)).await.expect("opened");
    assert!(matches!(tar.content(), Content::DirectoryTar { .. }));
    let mut archive = Vec::new();
    tar.read_to_end(&mut archive).await.expect("read whole");
    assert!(archive.len() > data.len());

    // A symlink is refused by name.
    let e = client
        .get_path(&s(&root.join("deep/link")))
        .await
        .expect_err("a symlink");
    let TransferError::Refused(refusal) = &e else {
        panic!("expected a refusal, got {e:?}")
    };
    assert_eq!(refusal.kind, FileErrorKind::Symlink, "{refusal}");

    // A put dropped halfway leaves neither the file nor its temporary file.
    let half = root.join("half");
    std::fs::create_dir(&half).expect("a dir");
    let (mut feed, src) = tokio::io::duplex(64 * 1024);
    let put = tokio::spawn(client.put_file(
        PutFile {
            path: s(&half.join("big.bin")),
            mode: 0o644,
            size: 10_000_000,
            create_parents: false,
        },
        src,
    ));
    feed.write_all(&vec![1u8; 200_000]).await.expect("fed");
    wait_until("the guest writes its temporary file", || {
        entries(&half).iter().any(|n| n.starts_with(".airlock-put."))
    })
    .await;
    put.abort();
    let _ = put.await;
    wait_until("the guest removes its temporary file", || {
        entries(&half).is_empty()
    })
    .await;
    drop(feed);
}

/// A raw client connection to a keeper: what a well-behaved `GuestClient` never sends.
struct RawClient {
    s: UnixStream,
    dec: FrameDecoder,
}

impl RawClient {
    fn send(&mut self, id: u32, req: Request) {
        use std::io::Write;
        let bytes = encode_frame(id, &HostMessage::Request(req)).expect("encodes");
        self.s.write_all(&bytes).expect("sent");
    }

    /// Reads frames until `want` accepts one's reply (others are skipped) or 20 s pass.
    fn reply_until(&mut self, what: &str, want: impl Fn(u32, &Reply) -> bool) -> Reply {
        use std::io::Read;
        self.s
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("a timeout");
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Some(frame) = self.dec.next_frame().expect("well-formed frames") {
                if let Ok(GuestMessage::Reply(r)) = frame.decode::<GuestMessage>() {
                    if want(frame.id, &r) {
                        return r;
                    }
                }
            }
            let n = self.s.read(&mut buf).unwrap_or_else(|e| panic!("no {what}: {e}"));
            assert!(n > 0, "the keeper hung up before {what}");
            self.dec.extend(&buf[..n]);
        }
    }
}

#[test]
fn a_client_reusing_the_id_of_a_transfer_in_flight_is_refused_by_the_keeper() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let (_kill, _client) = agent(tmp.path());
    // Larger than the first credit window: the download stays in flight, waiting for credit.
    let big = tmp.path().join("big.bin");
    std::fs::write(&big, vec![3u8; 8 << 20]).expect("a file");
    let mut raw = RawClient {
        s: UnixStream::connect(tmp.path().join("keeper.sock")).expect("connects"),
        dec: FrameDecoder::default(),
    };
    raw.send(
        1,
        Request::Hello {
            protocol: PROTOCOL_VERSION,
            client: "reuser".into(),
        },
    );
    raw.reply_until("hello", |id, r| id == 1 && matches!(r, Reply::Hello { .. }));
    raw.send(7, Request::GetPath { path: s(&big) });
    raw.reply_until("the download opening", |id, r| {
        id == 7 && matches!(r, Reply::Opened(_))
    });
    raw.send(7, Request::GetPath { path: s(&big) });
    let refused = raw.reply_until("a refusal", |id, r| id == 7 && matches!(r, Reply::Error { .. }));
    let Reply::Error { kind, message } = refused else {
        unreachable!("only an error is accepted")
    };
    assert_eq!(kind, ErrorKind::InvalidRequest, "{message}");
    assert!(
        message.contains("request 7 is a file transfer in flight already"),
        "{message}"
    );
}
