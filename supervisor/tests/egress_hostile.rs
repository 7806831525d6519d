//! A hostile guest against the egress gateway: a fake guest agent that speaks the real protocol
//! opens 10,000 streams and sends data without credit. The gateway bounds what it keeps, closes
//! the offending streams with a reason, and the channel keeps serving requests.

use std::sync::Arc;
use std::time::Duration;

use airlock_domain::Screen;
use airlock_protocol::{ProxyKind, StreamMessage, MAX_STREAMS, MAX_STREAM_CHUNK};
use airlock_supervisor::Supervisor;
use airlock_test_kit::{Answers, FakeGuest, Supervised};
use anyhow::{ensure, Context, Result};

const SCREEN: Screen = Screen {
    width: 32,
    height: 20,
};

/// A supervisor over a fake guest (answering hello, attach, ping, screenshots…) as sandbox `fake`,
/// and the scratch directory its ledger lives in.
async fn supervised() -> Result<(Supervisor, FakeGuest, tempfile::TempDir)> {
    let Supervised {
        supervisor,
        guest,
        dir,
        ..
    } = Supervised::start("fake", Answers::new(SCREEN)).await?;
    Ok((supervisor, guest, dir))
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
    let reading = fake.reading();
    reading.stop();
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
    reading.resume();
    let _fake = tokio::time::timeout(Duration::from_secs(60), flood)
        .await
        .context("the flood did not drain after the guest read again")???;
    let shot = tokio::time::timeout(Duration::from_secs(30), sup.screenshot("fake"))
        .await
        .context("no screenshot after the guest read again")??;
    ensure!(shot.width == SCREEN.width, "the channel broke");
    Ok(())
}
