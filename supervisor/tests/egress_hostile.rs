//! A hostile guest against the egress gateway: a fake guest agent that speaks the real protocol
//! opens 10,000 streams and sends data without credit. The gateway bounds what it keeps, closes
//! the offending streams with a reason, and the channel keeps serving requests.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_domain::Screen;
use airlock_ledger::Ledger;
use airlock_policy::Policy;
use airlock_protocol::{
    encode_frame, FrameDecoder, GuestMessage, HostMessage, Pixels, ProxyKind, Reply, Request, StreamMessage,
    MAX_STREAMS, MAX_STREAM_CHUNK, PROTOCOL_VERSION,
};
use airlock_sandbox::{GuestClient, Store};
use airlock_supervisor::{Config, ImageSource, Supervisor};
use anyhow::{ensure, Context, Result};

struct NoImages;

impl ImageSource for NoImages {
    fn image(&self, _: &str, _: &mut dyn FnMut(&str)) -> Result<airlock_guest_image::Image, String> {
        Err("this test creates no sandboxes".into())
    }
}

const SCREEN: Screen = Screen {
    width: 32,
    height: 20,
};

/// A fake guest: answers hello, attach, ping and screenshots; reports every stream message the
/// host sends; lets the test write guest frames.
struct FakeGuest {
    out: Arc<Mutex<UnixStream>>,
    from_host: mpsc::Receiver<(u32, StreamMessage)>,
    /// Cleared to make the guest stop reading its channel.
    reading: Arc<std::sync::atomic::AtomicBool>,
}

impl FakeGuest {
    fn start() -> Result<(FakeGuest, UnixStream)> {
        let (host, guest) = UnixStream::pair()?;
        let out = Arc::new(Mutex::new(guest.try_clone()?));
        let (tx, from_host) = mpsc::channel();
        let writer = out.clone();
        let mut reader = guest;
        let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let still = reading.clone();
        std::thread::spawn(move || {
            let mut dec = FrameDecoder::default();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                while !still.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let n = match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                dec.extend(&buf[..n]);
                while let Ok(Some(frame)) = dec.next_frame() {
                    let Ok(msg) = frame.decode::<HostMessage>() else {
                        return;
                    };
                    let reply = match msg {
                        HostMessage::Stream(m) => {
                            let _ = tx.send((frame.id, m));
                            continue;
                        }
                        HostMessage::Cancel => continue,
                        HostMessage::Request(Request::Hello { .. }) => Reply::Hello {
                            protocol: PROTOCOL_VERSION,
                            agent_version: "fake".into(),
                            screen_w: SCREEN.width,
                            screen_h: SCREEN.height,
                        },
                        HostMessage::Request(Request::Ping) => Reply::Pong,
                        HostMessage::Request(Request::AttachEgress) => Reply::Done,
                        HostMessage::Request(Request::Screenshot) => {
                            let px = vec![0u8; usize::from(SCREEN.width) * usize::from(SCREEN.height) * 4];
                            Reply::Screenshot(Pixels::compress(0, 0, SCREEN.width, SCREEN.height, &px))
                        }
                        HostMessage::Request(_) => Reply::Done,
                    };
                    let Ok(bytes) = encode_frame(frame.id, &GuestMessage::Reply(reply)) else {
                        return;
                    };
                    if writer.lock().map(|mut w| w.write_all(&bytes)).is_err() {
                        return;
                    }
                }
            }
        });
        Ok((
            FakeGuest {
                out,
                from_host,
                reading,
            },
            host,
        ))
    }

    fn send(&self, id: u32, msg: StreamMessage) -> Result<()> {
        let bytes = encode_frame(id, &GuestMessage::Stream(msg))?;
        self.out
            .lock()
            .map_err(|_| anyhow::anyhow!("writer poisoned"))?
            .write_all(&bytes)?;
        Ok(())
    }

    /// Host stream messages until `done` says enough, or the deadline.
    fn collect(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[(u32, StreamMessage)]) -> bool,
    ) -> Vec<(u32, StreamMessage)> {
        let deadline = std::time::Instant::now() + timeout;
        let mut got = Vec::new();
        while !done(&got) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.from_host.recv_timeout(left) {
                Ok(m) => got.push(m),
                Err(_) => break,
            }
        }
        got
    }
}

async fn supervised() -> Result<(Supervisor, FakeGuest, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let ledger = Ledger::open(&dir.path().join("ledger")).await?;
    let (store, _) = Store::open(dir.path().join("store"))?;
    let sup = Supervisor::new(
        ledger,
        Policy::default_policy()?,
        store,
        Arc::new(NoImages),
        Config::new(Vec::new()),
    );
    let (fake, host) = FakeGuest::start()?;
    let guest = tokio::task::spawn_blocking(move || GuestClient::over_unix(host, "fake")).await??;
    sup.attach_guest("fake", SCREEN, guest).await;
    ensure!(sup.egress_hub("fake").is_some(), "the gateway did not attach");
    Ok((sup, fake, dir))
}

fn closes(got: &[(u32, StreamMessage)]) -> Vec<(u32, String)> {
    got.iter()
        .filter_map(|(id, m)| match m {
            StreamMessage::Close { reason } => Some((*id, reason.clone().unwrap_or_default())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_stream_opens_are_bounded_and_the_channel_keeps_working() -> Result<()> {
    let (sup, fake, _dir) = supervised().await?;
    for id in 1..=10_000u32 {
        fake.send(
            id,
            StreamMessage::Open {
                kind: ProxyKind::Http,
            },
        )?;
    }
    let over = 10_000 - MAX_STREAMS;
    let got = fake.collect(Duration::from_secs(60), |g| closes(g).len() >= over);
    let refused = closes(&got);
    ensure!(
        refused.len() >= over,
        "only {} of the {over} streams over the limit were closed",
        refused.len()
    );
    ensure!(
        refused
            .iter()
            .all(|(_, r)| r.contains("connections are open already")),
        "a close without the reason: {:?}",
        refused
            .iter()
            .find(|(_, r)| !r.contains("connections are open already"))
    );
    let shot = sup
        .screenshot("fake")
        .await
        .context("a screenshot after the flood")?;
    ensure!(shot.width == SCREEN.width, "the channel broke");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_without_credit_closes_only_that_stream() -> Result<()> {
    let (sup, fake, _dir) = supervised().await?;
    fake.send(
        7,
        StreamMessage::Open {
            kind: ProxyKind::Http,
        },
    )?;
    // A destination the policy asks about: the gateway holds the connection and reads nothing
    // more from it while the operator decides, so no credit comes back.
    fake.send(
        7,
        StreamMessage::Data(b"CONNECT new.test:443 HTTP/1.1\r\n\r\n".to_vec()),
    )?;
    let chunk = vec![b'a'; MAX_STREAM_CHUNK];
    for _ in 0..12 {
        fake.send(7, StreamMessage::Data(chunk.clone()))?;
    }
    let got = fake.collect(Duration::from_secs(30), |g| !closes(g).is_empty());
    let closed = closes(&got);
    ensure!(
        closed.len() == 1 && closed[0].0 == 7,
        "the host closed {closed:?}"
    );
    ensure!(
        closed[0].1.contains("credit"),
        "the close does not say why: {:?}",
        closed[0].1
    );
    // Another stream still works up to the gateway's policy decision.
    fake.send(
        8,
        StreamMessage::Open {
            kind: ProxyKind::Http,
        },
    )?;
    fake.send(
        8,
        StreamMessage::Data(b"GET http://1.2.3.4/ HTTP/1.1\r\nHost: 1.2.3.4\r\n\r\n".to_vec()),
    )?;
    let got = fake.collect(Duration::from_secs(30), |g| {
        g.iter()
            .any(|(id, m)| *id == 8 && matches!(m, StreamMessage::Data(_)))
    });
    let page: Vec<u8> = got
        .iter()
        .filter(|(id, _)| *id == 8)
        .filter_map(|(_, m)| match m {
            StreamMessage::Data(d) => Some(d.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let page = String::from_utf8_lossy(&page);
    ensure!(
        page.starts_with("HTTP/1.1 403") && page.contains("ip-literal"),
        "{page}"
    );
    let shot = sup
        .screenshot("fake")
        .await
        .context("a screenshot after the overrun")?;
    ensure!(shot.width == SCREEN.width, "the channel broke");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_stops_reading_its_channel_stalls_nothing_on_the_host() -> Result<()> {
    let (sup, fake, _dir) = supervised().await?;
    // A heartbeat on the runtime: it must keep beating while the guest floods without reading.
    let beats = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let b = beats.clone();
    let heart = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            b.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let reading = fake.reading.clone();
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    let flood = tokio::task::spawn_blocking(move || -> Result<FakeGuest> {
        // Each stream asks for an IP literal, which the policy denies with a refusal page: the
        // host has far more to send than a guest that does not read can take.
        for id in 1..=3000u32 {
            fake.send(
                id,
                StreamMessage::Open {
                    kind: ProxyKind::Http,
                },
            )?;
            fake.send(
                id,
                StreamMessage::Data(b"GET http://1.2.3.4/ HTTP/1.1\r\n\r\n".to_vec()),
            )?;
        }
        Ok(fake)
    });
    let before = beats.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = beats.load(std::sync::atomic::Ordering::Relaxed) - before;
    ensure!(
        during >= 50,
        "the runtime stalled while the guest flooded: {during} beats in 2 s"
    );
    // Other work of the supervisor goes on.
    let pending = tokio::time::timeout(Duration::from_secs(2), sup.pending())
        .await
        .context("the supervisor did not answer while the guest flooded")?;
    ensure!(pending.is_empty(), "{pending:?}");
    heart.abort();
    // The guest reads again: the flood drains (what did not fit in the bounded queue to a guest
    // that was not reading was dropped with its stream) and the channel recovers.
    reading.store(true, std::sync::atomic::Ordering::Relaxed);
    let _fake = tokio::time::timeout(Duration::from_secs(60), flood)
        .await
        .context("the flood did not drain after the guest read again")???;
    let shot = tokio::time::timeout(Duration::from_secs(30), sup.screenshot("fake"))
        .await
        .context("no screenshot after the guest read again")??;
    ensure!(shot.width == SCREEN.width, "the channel broke");
    Ok(())
}
