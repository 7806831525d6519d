//! A hostile guest: fake guests that send garbage, truncated frames, a 4 GiB length prefix, floods
//! and lies, against the host's real channel code. Each gets a clear error; the process stays up;
//! a well-behaved guest and a real sandbox next to them keep working.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::Duration;

use airlock_protocol::{
    encode_frame, FrameDecoder, GuestMessage, HostMessage, Pixels, Reply, Request, PROTOCOL_VERSION,
};
use airlock_sandbox::{BackendChoice, ChannelError, GuestClient};
use airlock_test_kit::e2e::Env;
use airlock_test_kit::{deadline, wait_until_blocking};
use anyhow::{bail, ensure, Result};

/// Reads one host frame: (id, message).
fn read_request(s: &mut UnixStream, dec: &mut FrameDecoder) -> Option<(u32, HostMessage)> {
    let mut buf = [0u8; 4096];
    loop {
        if let Ok(Some(f)) = dec.next_frame() {
            return f.decode().ok().map(|m| (f.id, m));
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => dec.extend(&buf[..n]),
        }
    }
}

fn reply(s: &mut UnixStream, id: u32, r: Reply) -> std::io::Result<()> {
    s.write_all(&encode_frame(id, &GuestMessage::Reply(r)).expect("encode"))
}

fn hello() -> Reply {
    Reply::Hello {
        protocol: PROTOCOL_VERSION,
        agent_version: "fake".into(),
        screen_w: 1280,
        screen_h: 800,
    }
}

/// A fake guest: answers hello properly, then runs `then`.
fn fake_guest(then: impl FnOnce(UnixStream, FrameDecoder) + Send + 'static) -> (UnixStream, JoinHandle<()>) {
    let (host, mut guest) = UnixStream::pair().expect("pair");
    let t = std::thread::spawn(move || {
        let mut dec = FrameDecoder::default();
        if let Some((id, HostMessage::Request(Request::Hello { .. }))) = read_request(&mut guest, &mut dec) {
            let _ = reply(&mut guest, id, hello());
            then(guest, dec);
        }
    });
    (host, t)
}

/// A fake guest that sends `bytes` instead of a hello reply.
fn raw_guest(bytes: Vec<u8>, close: bool) -> (UnixStream, JoinHandle<()>) {
    let (host, mut guest) = UnixStream::pair().expect("pair");
    let t = std::thread::spawn(move || {
        let mut dec = FrameDecoder::default();
        let _ = read_request(&mut guest, &mut dec);
        let _ = guest.write_all(&bytes);
        if !close {
            // Keep the socket open (no end of stream to explain the error) until the host hangs
            // up, or at most 10 s.
            let _ = guest.set_read_timeout(Some(Duration::from_secs(10)));
            let mut sink = [0u8; 4096];
            while matches!(guest.read(&mut sink), Ok(n) if n > 0) {}
        }
    });
    (host, t)
}

fn client(s: UnixStream, name: &str) -> Result<GuestClient, ChannelError> {
    GuestClient::over_unix(s, name)
}

fn expect_err<T: std::fmt::Debug>(r: Result<T, ChannelError>, needle: &str) -> Result<()> {
    match r {
        Ok(v) => bail!("expected an error mentioning {needle:?}, got {v:?}"),
        Err(e) => {
            ensure!(
                e.to_string().contains(needle),
                "error {:?} does not mention {needle:?}",
                e.to_string()
            );
            Ok(())
        }
    }
}

/// Sends 20,000 small screen frames as replies to request `id`; false once the host hung up.
fn flood_frames(g: &mut UnixStream, id: u32) -> bool {
    let px = vec![0x55u8; 64 * 64 * 4];
    (0..20_000u64).all(|seq| {
        let f = airlock_protocol::FrameUpdate {
            seq,
            screen_w: 1280,
            screen_h: 800,
            captured_us: seq,
            regions: vec![Pixels::compress(0, 0, 64, 64, &px)],
        };
        reply(g, id, Reply::Frame(f)).is_ok()
    })
}

fn rss_kib() -> u64 {
    airlock_sandbox::procs::rss_bytes(std::process::id()).unwrap_or(0) / 1024
}

#[test]
fn garbage_truncation_and_huge_lengths_are_clear_errors() -> Result<()> {
    let (s, t) = raw_guest(b"HTTP/1.1 200 OK\r\n\r\n<html>".to_vec(), false);
    expect_err(client(s, "garbage"), "not an Airlock frame")?;
    t.join().ok();

    let whole = encode_frame(1, &GuestMessage::Reply(hello())).expect("encode");
    let (s, t) = raw_guest(whole[..whole.len() - 3].to_vec(), true);
    expect_err(client(s, "truncated"), "closed in the middle of a frame")?;
    t.join().ok();

    let before = rss_kib();
    let mut huge = vec![b'A', b'L', PROTOCOL_VERSION, 0, 1, 0, 0, 0];
    huge.extend(u32::MAX.to_le_bytes());
    let (s, t) = raw_guest(huge, false);
    expect_err(
        client(s, "huge"),
        "4294967295-byte message, over the 16777216-byte limit",
    )?;
    ensure!(
        rss_kib() < before + 64 * 1024,
        "a 4 GiB length prefix grew memory by {} KiB",
        rss_kib() - before
    );
    t.join().ok();

    let mut bad_version = encode_frame(1, &GuestMessage::Reply(hello())).expect("encode");
    bad_version[2] = 99;
    let (s, t) = raw_guest(bad_version, false);
    expect_err(client(s, "version"), "protocol version 99")?;
    t.join().ok();
    Ok(())
}

#[test]
fn unsolicited_and_wrong_replies_close_the_channel() -> Result<()> {
    // A flood of replies to requests never made.
    let (s, t) = fake_guest(|mut g, _| {
        for i in 0..10_000u32 {
            if reply(&mut g, 1_000_000 + i, Reply::Pong).is_err() {
                break;
            }
        }
    });
    let c = client(s, "unsolicited")?;
    wait_until_blocking(
        deadline(Duration::from_secs(5)),
        "the flood closes the channel",
        || c.mux().closed().is_some(),
    )?;
    expect_err(c.ping(), "never made (out of order)")?;
    drop(c); // closes the socket: the flooding guest's writes fail and it stops
    t.join().ok();

    // A reply of the wrong kind, and pixels that lie about their size.
    let (s, t) = fake_guest(|mut g, mut dec| {
        while let Some((id, m)) = read_request(&mut g, &mut dec) {
            let r = match m {
                HostMessage::Request(Request::Ping) => {
                    Reply::Screenshot(Pixels::compress(0, 0, 1, 1, &[0; 4]))
                }
                HostMessage::Request(Request::Screenshot) => Reply::Screenshot(Pixels {
                    width: 1280,
                    height: 800,
                    ..Pixels::compress(0, 0, 2, 2, &[0; 16])
                }),
                _ => Reply::Done,
            };
            if reply(&mut g, id, r).is_err() {
                break;
            }
        }
    });
    let c = client(s, "liar")?;
    expect_err(c.ping(), "unexpected reply screenshot")?;
    expect_err(c.screenshot(), "pixel data holds 16 bytes")?;
    drop(c);
    t.join().ok();
    Ok(())
}

#[test]
fn a_flooding_stream_is_bounded_and_skips_frames() -> Result<()> {
    let (s, t) = fake_guest(|mut g, mut dec| {
        if let Some((id, HostMessage::Request(Request::StartFrames { .. }))) = read_request(&mut g, &mut dec)
        {
            if flood_frames(&mut g, id) {
                let _ = reply(&mut g, id, Reply::StreamEnded);
            }
        }
    });
    let c = client(s, "flood")?;
    let before = rss_kib();
    let stream = c.frames(60)?;
    let mut last_seq = 0;
    let mut received = 0;
    let mut stalled = false;
    loop {
        match stream.next(Duration::from_secs(10))? {
            Some(Reply::Frame(f)) => {
                ensure!(f.seq >= last_seq, "frames out of order");
                last_seq = f.seq;
                received += 1;
                if !stalled {
                    // A consumer too slow for the flood: it reads nothing more until the channel
                    // has had to skip frames for it, then catches up.
                    wait_until_blocking(
                        deadline(Duration::from_secs(10)),
                        "the channel skips frames for a consumer that does not read",
                        || c.mux().dropped_items() > 0,
                    )?;
                    stalled = true;
                }
            }
            Some(Reply::StreamEnded) | None => break,
            Some(other) => bail!("unexpected {other:?}"),
        }
    }
    ensure!(
        c.mux().dropped_items() > 0,
        "a slow consumer was not skipped ahead"
    );
    ensure!(
        received < 20_000 && last_seq > 10_000,
        "received {received}, last {last_seq}"
    );
    ensure!(
        rss_kib() < before + 64 * 1024,
        "the flood grew memory by {} KiB",
        rss_kib() - before
    );
    t.join().ok();
    Ok(())
}

/// A guest that answers a file download with a flood of screen frames (a reply no transfer gets,
/// which would otherwise queue up past the transfer's credit) loses its channel: the download
/// fails naming the reply, and memory stays bounded.
#[test]
fn screen_frames_flooding_a_file_transfer_close_the_channel() -> Result<()> {
    let (s, t) = fake_guest(|mut g, mut dec| {
        if let Some((id, HostMessage::Request(Request::GetPath { .. }))) = read_request(&mut g, &mut dec) {
            flood_frames(&mut g, id);
        }
    });
    let c = client(s, "transfer-flood")?;
    let before = rss_kib();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), c.get_path("/root/report.txt")).await
    })?;
    let e = match outcome {
        Ok(_) => bail!("a download answered with screen frames succeeded"),
        Err(e) => anyhow::Error::from(e),
    };
    ensure!(
        format!("{e:#}").contains("sent a frame reply for request"),
        "the error does not name the reply: {e:#}"
    );
    ensure!(c.mux().closed().is_some(), "the channel stayed open");
    ensure!(
        rss_kib() < before + 64 * 1024,
        "the flood grew memory by {} KiB",
        rss_kib() - before
    );
    drop(c);
    t.join().ok();
    Ok(())
}

#[test]
fn hostile_guests_do_not_affect_other_sandboxes() -> Result<()> {
    let env = Env::new("hostile");
    let real = env.create(BackendChoice::Gvisor)?;
    // A well-behaved fake guest beside the hostile ones.
    let (good, gt) = fake_guest(|mut g, mut dec| {
        while let Some((id, _)) = read_request(&mut g, &mut dec) {
            if reply(&mut g, id, Reply::Pong).is_err() {
                break;
            }
        }
    });
    let good = client(good, "good")?;
    for i in 0..20 {
        let mut junk = vec![b'A', b'L', PROTOCOL_VERSION, 0];
        junk.extend((0..64u32).map(|b| (b * 31 + i) as u8));
        let (s, t) = raw_guest(junk, true);
        ensure!(client(s, "junk").is_err());
        good.ping()?;
        real.client.ping()?;
        t.join().ok();
    }
    ensure!(real.client.screenshot()?.width == 1280);
    drop(good);
    gt.join().ok();
    Ok(())
}
