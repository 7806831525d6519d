//! The damage-region frame stream: XDamage says what changed, the framebuffer file supplies pixels.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_protocol::{FrameUpdate, Pixels};
use x11rb::connection::Connection;
use x11rb::errors::{ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::ConnectionExt as _;
use x11rb::protocol::Event;

use crate::display::reply;
use crate::fb::Framebuffer;
use crate::session::SendError;

/// Most rectangles in one update; more are merged.
const MAX_REGIONS: usize = 8;

/// How long after a read its regions are read once more. The framebuffer file is read directly,
/// not through the X server, so a damage report can arrive before the drawing it reports has
/// landed (an xterm cursor moved, the glyph under it not yet drawn); without a second look that
/// cell would stay stale on the host until something else damaged it.
const SETTLE: Duration = Duration::from_millis(60);

/// An axis-aligned rectangle: x, y, width, height.
pub type Rect = (u16, u16, u16, u16);

/// Regions as read, with their pixels.
type Read = Vec<(Rect, Vec<u8>)>;

/// Why the frame stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// No X server to watch.
    #[error("cannot connect to the X server")]
    Connect(#[source] x11rb::errors::ConnectError),
    /// XFIXES 5.0, which DAMAGE needs, could not be negotiated.
    #[error("the X server has no XFIXES 5.0")]
    NoXFixes(#[source] ReplyError),
    /// DAMAGE 1.1 could not be negotiated.
    #[error("the X server has no DAMAGE extension")]
    NoDamage(#[source] ReplyError),
    /// The damage object on the root window could not be created.
    #[error("cannot watch the root window for damage")]
    Watch(#[source] ReplyOrIdError),
    /// The framebuffer file could not be opened.
    #[error("cannot open the framebuffer in {}", .dir.display())]
    OpenFramebuffer {
        /// The `-fbdir` directory.
        dir: std::path::PathBuf,
        /// The error opening or parsing it.
        #[source]
        source: std::io::Error,
    },
    /// Events could not be read.
    #[error("the X connection was lost")]
    Lost(#[source] ConnectionError),
    /// The server's damage could not be reset before a read.
    #[error("cannot reset the damage before reading")]
    Reset(#[source] ConnectionError),
    /// A region could not be read from the framebuffer.
    #[error("cannot read the framebuffer region {}x{}+{}+{}", .rect.2, .rect.3, .rect.0, .rect.1)]
    ReadFramebuffer {
        /// The region.
        rect: Rect,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// An update could not be sent.
    #[error("cannot send a frame update to the host")]
    Send(#[source] SendError),
}

/// Streams updates through `send` until `cancel` is set or `send` fails. The first update is the
/// whole screen. A slow host only delays this thread; damage keeps accumulating and is merged.
pub fn stream(
    fbdir: &std::path::Path,
    max_fps: u16,
    cancel: &Arc<AtomicBool>,
    mut send: impl FnMut(FrameUpdate) -> Result<(), SendError>,
) -> Result<(), StreamError> {
    let (conn, screen) = x11rb::connect(None).map_err(StreamError::Connect)?;
    let root = conn.setup().roots[screen].root;
    reply(conn.xfixes_query_version(5, 0)).map_err(StreamError::NoXFixes)?;
    reply(conn.damage_query_version(1, 1)).map_err(StreamError::NoDamage)?;
    let dmg = conn.generate_id().map_err(StreamError::Watch)?;
    conn.damage_create(dmg, root, damage::ReportLevel::DELTA_RECTANGLES)
        .map_err(|e| StreamError::Watch(e.into()))?;
    conn.flush().map_err(|e| StreamError::Watch(e.into()))?;
    let fb = Framebuffer::open(fbdir).map_err(|source| StreamError::OpenFramebuffer {
        dir: fbdir.to_path_buf(),
        source,
    })?;
    let (w, h) = (fb.width, fb.height);
    let interval = Duration::from_micros(1_000_000 / u64::from(max_fps.clamp(1, 60)));
    let start = Instant::now();
    let mut seq = 0u64;
    let mut pending: Vec<Rect> = vec![(0, 0, w, h)];
    // The regions last read, with their pixels, to look at again once SETTLE has passed.
    let mut recheck: Option<(Instant, Read)> = None;
    let mut next = Instant::now();
    while !cancel.load(Ordering::Relaxed) {
        while let Some(ev) = conn.poll_for_event().map_err(StreamError::Lost)? {
            if let Event::DamageNotify(n) = ev {
                let a = n.area;
                if let Some(r) = clip((a.x, a.y, a.width, a.height), w, h) {
                    pending.push(r);
                }
            }
        }
        let now = Instant::now();
        if pending.is_empty() && recheck.as_ref().is_some_and(|(due, _)| now >= *due) {
            if let Some((_, before)) = recheck.take() {
                let changed = settled_changes(&fb, before)?;
                if !changed.is_empty() {
                    let regions = changed
                        .iter()
                        .map(|((x, y, rw, rh), px)| Pixels::compress(*x, *y, *rw, *rh, px))
                        .collect();
                    send(update(&mut seq, start, w, h, regions)).map_err(StreamError::Send)?;
                    // Still drawing there: look once more.
                    recheck = Some((now + SETTLE, changed));
                }
            }
            continue;
        }
        if pending.is_empty() || now < next {
            std::thread::sleep(
                Duration::from_millis(4)
                    .min(next.saturating_duration_since(now).max(Duration::from_millis(1))),
            );
            continue;
        }
        // Reset the server's damage before reading, so changes made while we read are reported again.
        conn.damage_subtract(dmg, x11rb::NONE, x11rb::NONE)
            .map_err(StreamError::Reset)?;
        conn.flush().map_err(StreamError::Reset)?;
        // Regions still waiting for their second look get it now: those that changed go out
        // (first, as the older news) and are looked at again; the others are done. Only what was
        // damaged or still changing is carried, so a busy screen does not grow the reads.
        let mut read = match recheck.take() {
            Some((_, before)) => settled_changes(&fb, before)?,
            None => Vec::new(),
        };
        for r in coalesce(std::mem::take(&mut pending), MAX_REGIONS) {
            let px = fb
                .read(r.0, r.1, r.2, r.3)
                .map_err(|source| StreamError::ReadFramebuffer { rect: r, source })?;
            read.push((r, px));
        }
        let regions = read
            .iter()
            .map(|((x, y, rw, rh), px)| Pixels::compress(*x, *y, *rw, *rh, px))
            .collect();
        send(update(&mut seq, start, w, h, regions)).map_err(StreamError::Send)?;
        recheck = Some((now + SETTLE, read));
        next = now + interval;
    }
    let _ = conn.damage_destroy(dmg);
    Ok(())
}

/// The next update of the stream.
fn update(seq: &mut u64, start: Instant, w: u16, h: u16, regions: Vec<Pixels>) -> FrameUpdate {
    let u = FrameUpdate {
        seq: *seq,
        screen_w: w,
        screen_h: h,
        captured_us: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        regions,
    };
    *seq += 1;
    u
}

/// Reads `before`'s regions again; returns those whose pixels changed since, as they are now.
fn settled_changes(fb: &Framebuffer, before: Read) -> Result<Read, StreamError> {
    let mut out = Vec::new();
    for ((x, y, rw, rh), old) in before {
        let now = fb
            .read(x, y, rw, rh)
            .map_err(|source| StreamError::ReadFramebuffer {
                rect: (x, y, rw, rh),
                source,
            })?;
        if now != old {
            out.push(((x, y, rw, rh), now));
        }
    }
    Ok(out)
}

fn clip(r: (i16, i16, u16, u16), w: u16, h: u16) -> Option<Rect> {
    let x0 = i32::from(r.0).clamp(0, i32::from(w));
    let y0 = i32::from(r.1).clamp(0, i32::from(h));
    let x1 = (i32::from(r.0) + i32::from(r.2)).clamp(0, i32::from(w));
    let y1 = (i32::from(r.1) + i32::from(r.3)).clamp(0, i32::from(h));
    (x1 > x0 && y1 > y0).then(|| (x0 as u16, y0 as u16, (x1 - x0) as u16, (y1 - y0) as u16))
}

fn union(a: Rect, b: Rect) -> Rect {
    let x0 = a.0.min(b.0);
    let y0 = a.1.min(b.1);
    let x1 = (u32::from(a.0) + u32::from(a.2)).max(u32::from(b.0) + u32::from(b.2));
    let y1 = (u32::from(a.1) + u32::from(a.3)).max(u32::from(b.1) + u32::from(b.3));
    (x0, y0, (x1 - u32::from(x0)) as u16, (y1 - u32::from(y0)) as u16)
}

fn area(r: Rect) -> u64 {
    u64::from(r.2) * u64::from(r.3)
}

fn overlaps(a: Rect, b: Rect) -> bool {
    u32::from(a.0) <= u32::from(b.0) + u32::from(b.2)
        && u32::from(b.0) <= u32::from(a.0) + u32::from(a.2)
        && u32::from(a.1) <= u32::from(b.1) + u32::from(b.3)
        && u32::from(b.1) <= u32::from(a.1) + u32::from(a.3)
}

/// Merges touching or overlapping rectangles, then the pairs whose union wastes the least area
/// until at most `max` remain.
pub fn coalesce(mut rects: Vec<Rect>, max: usize) -> Vec<Rect> {
    let mut merged = true;
    while merged {
        merged = false;
        'outer: for i in 0..rects.len() {
            for j in i + 1..rects.len() {
                if overlaps(rects[i], rects[j]) {
                    rects[i] = union(rects[i], rects[j]);
                    rects.swap_remove(j);
                    merged = true;
                    break 'outer;
                }
            }
        }
    }
    while rects.len() > max.max(1) {
        let mut best = (0, 1, u64::MAX);
        for i in 0..rects.len() {
            for j in i + 1..rects.len() {
                let waste = area(union(rects[i], rects[j])).saturating_sub(area(rects[i]) + area(rects[j]));
                if waste < best.2 {
                    best = (i, j, waste);
                }
            }
        }
        rects[best.0] = union(rects[best.0], rects[best.1]);
        rects.swap_remove(best.1);
    }
    rects
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_protocol::error_chain as chain;

    #[test]
    fn a_failed_read_names_the_region_and_keeps_the_cause() {
        let e = StreamError::ReadFramebuffer {
            rect: (1, 2, 30, 40),
            source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "failed to fill whole buffer"),
        };
        assert_eq!(
            chain(&e),
            "cannot read the framebuffer region 30x40+1+2: failed to fill whole buffer"
        );
        let e = StreamError::OpenFramebuffer {
            dir: "/tmp/fb".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(
            chain(&e).starts_with("cannot open the framebuffer in /tmp/fb: "),
            "{}",
            chain(&e)
        );
    }

    #[test]
    fn overlapping_rects_merge() {
        let r = coalesce(vec![(0, 0, 10, 10), (5, 5, 10, 10), (100, 100, 1, 1)], 8);
        assert_eq!(r.len(), 2);
        assert!(r.contains(&(0, 0, 15, 15)));
    }

    #[test]
    fn caps_the_count_and_covers_everything() {
        let input: Vec<Rect> = (0..50).map(|i| (i * 20, i * 10, 5, 5)).collect();
        let out = coalesce(input.clone(), 4);
        assert_eq!(out.len(), 4);
        for r in input {
            assert!(
                out.iter().any(|o| union(*o, r) == *o),
                "{r:?} not covered by {out:?}"
            );
        }
    }

    #[test]
    fn clipping() {
        assert_eq!(clip((-5, -5, 10, 10), 100, 100), Some((0, 0, 5, 5)));
        assert_eq!(clip((95, 95, 10, 10), 100, 100), Some((95, 95, 5, 5)));
        assert_eq!(clip((200, 0, 10, 10), 100, 100), None);
    }
}
