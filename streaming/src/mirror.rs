//! The host-side mirror of a sandbox screen, built from the guest's damage updates.
//!
//! The guest is hostile: every [`FrameUpdate`] is checked (screen size, sequence, region bounds and sizes,
//! pixel data) before a single pixel is copied, so a refused update leaves the mirror as it was. After any
//! refusal the mirror waits for a new stream (sequence 0, a full frame): the driver restarts the guest's
//! frame stream when [`Mirror::apply`] fails.
//!
//! The mirror is pure: no I/O, no clock. Time stamps come in with the updates.
//!
//! ```
//! use airlock_protocol::{FrameUpdate, Pixels};
//! use airlock_streaming::mirror::{Damage, Mirror};
//!
//! let mut mirror = Mirror::new(4, 2);
//! let full = FrameUpdate {
//!     seq: 0,
//!     screen_w: 4,
//!     screen_h: 2,
//!     captured_us: 10,
//!     regions: vec![Pixels::compress(0, 0, 4, 2, &[9u8; 4 * 2 * 4])],
//! };
//! let applied = mirror.apply(&full).unwrap();
//! assert_eq!(applied.frame, 1);
//! assert_eq!(mirror.damage_since(1), Damage::None);
//! assert_eq!(mirror.damage_since(0), Damage::Full);
//! ```

use std::collections::VecDeque;

use airlock_protocol::{FrameUpdate, PixelsError};
use sha2::{Digest, Sha256};

use crate::Rect;

/// Most regions one update may carry.
pub const MAX_REGIONS: usize = 4096;
/// How many frames of damage the mirror remembers for [`Mirror::damage_since`].
pub const DAMAGE_HISTORY: usize = 120;
/// Most rectangles [`Mirror::damage_since`] hands out before merging them.
pub const MAX_DAMAGE_RECTS: usize = 64;
/// Domain tag at the start of every frame hash.
pub const FRAME_HASH_DOMAIN: &[u8] = b"airlock-frame/v1\n";

/// Pixels converted per hashing chunk (16 KiB of RGBA).
const HASH_CHUNK_PIXELS: usize = 4096;

/// Why an update was refused. The mirror is unchanged and waits for a new stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    /// The update describes a screen of another size.
    #[error("the update is for a {got_w}x{got_h} screen, the mirror is {want_w}x{want_h}")]
    ScreenSize {
        /// Width in the update.
        got_w: u16,
        /// Height in the update.
        got_h: u16,
        /// The mirror's width.
        want_w: u16,
        /// The mirror's height.
        want_h: u16,
    },
    /// The mirror awaits a new stream, and the update is not its first.
    #[error("the mirror awaits the start of a stream (sequence 0), got sequence {got}")]
    NotAStart {
        /// The update's sequence number.
        got: u64,
    },
    /// The first update of a stream does not cover the whole screen.
    #[error("the first update of a stream must cover the whole {width}x{height} screen, this one does not")]
    NotFull {
        /// Screen width.
        width: u16,
        /// Screen height.
        height: u16,
    },
    /// Updates were lost between the previous one and this one.
    #[error("updates were lost: expected sequence {expected}, got {got}")]
    Gap {
        /// The sequence number that should have come.
        expected: u64,
        /// The one that came.
        got: u64,
    },
    /// The update has more regions than [`MAX_REGIONS`].
    #[error("the update has {count} regions, over the limit of {max}")]
    TooManyRegions {
        /// Regions in the update.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A region has no pixels.
    #[error("region {index} ({x},{y} {width}x{height}) is empty")]
    EmptyRegion {
        /// Position of the region in the update.
        index: usize,
        /// Left.
        x: u16,
        /// Top.
        y: u16,
        /// Width.
        width: u16,
        /// Height.
        height: u16,
    },
    /// A region lies outside the screen or its pixel data is wrong.
    #[error("region {index} is refused: {source}")]
    Region {
        /// Position of the region in the update.
        index: usize,
        /// What was wrong.
        #[source]
        source: PixelsError,
    },
}

/// What an accepted update changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The mirror's frame number after the update (unchanged for a heartbeat).
    pub frame: u64,
    /// The rectangles that changed (empty for a heartbeat).
    pub rects: Vec<Rect>,
    /// The update's capture time, guest microseconds.
    pub captured_us: u64,
}

/// What changed between a frame a viewer holds and the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// Nothing: the viewer is up to date.
    None,
    /// These rectangles changed (deduplicated, at most [`MAX_DAMAGE_RECTS`]).
    Rects(Vec<Rect>),
    /// Send the whole screen.
    Full,
}

/// The host's copy of a guest screen.
#[derive(Debug, Clone)]
pub struct Mirror {
    width: u16,
    height: u16,
    bgrx: Vec<u8>,
    frame: u64,
    captured_us: u64,
    /// The sequence number the next update must carry; `None` while awaiting a stream start.
    next_seq: Option<u64>,
    /// Damage of the latest frames, oldest first, one entry per frame number (contiguous).
    history: VecDeque<(u64, Vec<Rect>)>,
    hash: Option<[u8; 32]>,
}

impl Mirror {
    /// A black `width` x `height` screen at frame 0, awaiting the start of a stream.
    pub fn new(width: u16, height: u16) -> Mirror {
        Mirror {
            width,
            height,
            bgrx: vec![0; usize::from(width) * usize::from(height) * 4],
            frame: 0,
            captured_us: 0,
            next_seq: None,
            history: VecDeque::with_capacity(DAMAGE_HISTORY),
            hash: None,
        }
    }

    /// Screen width.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Screen height.
    pub fn height(&self) -> u16 {
        self.height
    }

    /// The current frame number: 0 before the first update, then one more per update that changed pixels.
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// The pixels, BGRX rows of `width * 4` bytes, top to bottom.
    pub fn bgrx(&self) -> &[u8] {
        &self.bgrx
    }

    /// Guest capture time of the current frame, microseconds (0 before the first update).
    pub fn captured_us(&self) -> u64 {
        self.captured_us
    }

    /// Whether the next update must start a stream (sequence 0, full frame).
    pub fn awaiting_start(&self) -> bool {
        self.next_seq.is_none()
    }

    /// Expects a new stream next: an update with sequence 0 covering the whole screen.
    pub fn restart(&mut self) {
        self.next_seq = None;
    }

    /// Checks an update and copies its pixels in.
    ///
    /// On error nothing changes except that the mirror now awaits a new stream.
    pub fn apply(&mut self, update: &FrameUpdate) -> Result<Applied, MirrorError> {
        let result = self.try_apply(update);
        if result.is_err() {
            self.next_seq = None;
        }
        result
    }

    fn try_apply(&mut self, update: &FrameUpdate) -> Result<Applied, MirrorError> {
        if update.screen_w != self.width || update.screen_h != self.height {
            return Err(MirrorError::ScreenSize {
                got_w: update.screen_w,
                got_h: update.screen_h,
                want_w: self.width,
                want_h: self.height,
            });
        }
        if update.regions.len() > MAX_REGIONS {
            return Err(MirrorError::TooManyRegions {
                count: update.regions.len(),
                max: MAX_REGIONS,
            });
        }
        let starting = match self.next_seq {
            None if update.seq == 0 => true,
            None => return Err(MirrorError::NotAStart { got: update.seq }),
            Some(expected) if update.seq == expected => false,
            Some(expected) => {
                return Err(MirrorError::Gap {
                    expected,
                    got: update.seq,
                })
            }
        };

        let mut rects = Vec::with_capacity(update.regions.len());
        for (index, region) in update.regions.iter().enumerate() {
            if region.width == 0 || region.height == 0 {
                return Err(MirrorError::EmptyRegion {
                    index,
                    x: region.x,
                    y: region.y,
                    width: region.width,
                    height: region.height,
                });
            }
            region
                .check_bounds(self.width, self.height)
                .map_err(|source| MirrorError::Region { index, source })?;
            rects.push(Rect {
                x: region.x,
                y: region.y,
                width: region.width,
                height: region.height,
            });
        }
        if starting && !covers_screen(&rects, self.width, self.height) {
            return Err(MirrorError::NotFull {
                width: self.width,
                height: self.height,
            });
        }
        let mut pixels = Vec::with_capacity(update.regions.len());
        for (index, region) in update.regions.iter().enumerate() {
            pixels.push(
                region
                    .decompress()
                    .map_err(|source| MirrorError::Region { index, source })?,
            );
        }

        // Everything is checked: from here on nothing fails.
        self.next_seq = update.seq.checked_add(1);
        if rects.is_empty() {
            return Ok(Applied {
                frame: self.frame,
                rects,
                captured_us: update.captured_us,
            });
        }
        let stride = usize::from(self.width) * 4;
        for (rect, data) in rects.iter().zip(&pixels) {
            let row_len = usize::from(rect.width) * 4;
            let left = usize::from(rect.x) * 4;
            for (row, src) in data.chunks_exact(row_len).enumerate() {
                let start = (usize::from(rect.y) + row) * stride + left;
                self.bgrx[start..start + row_len].copy_from_slice(src);
            }
        }
        self.frame += 1;
        self.captured_us = update.captured_us;
        self.hash = None;
        let recorded = if rects.len() > MAX_DAMAGE_RECTS {
            vec![bounding(&rects)]
        } else {
            rects.clone()
        };
        if self.history.len() == DAMAGE_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((self.frame, recorded));
        Ok(Applied {
            frame: self.frame,
            rects,
            captured_us: update.captured_us,
        })
    }

    /// The SHA-256 of the current frame, as [`frame_hash_bgrx`] computes it; cached until the next change.
    pub fn hash(&mut self) -> [u8; 32] {
        match self.hash {
            Some(hash) => hash,
            None => {
                let hash = frame_hash_bgrx(self.width, self.height, &self.bgrx);
                self.hash = Some(hash);
                hash
            }
        }
    }

    /// What changed since `frame`, for a viewer that holds that frame.
    ///
    /// The current frame gives [`Damage::None`]. Frame 0, frames older than the
    /// [`DAMAGE_HISTORY`] the mirror remembers and frames from the future give [`Damage::Full`], as does
    /// damage of more than half the screen. Many small rectangles are merged into their bounding box.
    pub fn damage_since(&self, frame: u64) -> Damage {
        if frame == self.frame {
            return Damage::None;
        }
        if frame == 0 || frame > self.frame {
            return Damage::Full;
        }
        let remembered = self
            .history
            .front()
            .is_some_and(|(oldest, _)| *oldest <= frame + 1);
        if !remembered {
            return Damage::Full;
        }
        let rects: Vec<Rect> = self
            .history
            .iter()
            .filter(|(f, _)| *f > frame)
            .flat_map(|(_, rects)| rects.iter().copied())
            .collect();
        merge(rects, self.width, self.height)
    }

    /// The bounding box of what changed since `frame`: `None` when nothing did, the whole screen for
    /// [`Damage::Full`].
    pub fn bounding_damage_since(&self, frame: u64) -> Option<Rect> {
        match self.damage_since(frame) {
            Damage::None => None,
            Damage::Rects(rects) => rects.into_iter().reduce(Rect::union),
            Damage::Full => Some(Rect::screen(self.width, self.height)),
        }
    }
}

/// The bounding box of a non-empty list.
fn bounding(rects: &[Rect]) -> Rect {
    let mut iter = rects.iter().copied();
    match iter.next() {
        Some(first) => iter.fold(first, Rect::union),
        None => Rect::screen(0, 0),
    }
}

/// Deduplicates damage and decides between rectangles and a full frame.
fn merge(mut rects: Vec<Rect>, width: u16, height: u16) -> Damage {
    if rects.is_empty() {
        return Damage::None;
    }
    let half_screen = Rect::screen(width, height).area() / 2;
    rects.sort_unstable_by_key(|r| (r.y, r.x, r.height, r.width));
    rects.dedup();
    // Drop rectangles inside another one (after the dedup no two are equal). Bounded work: past this
    // many rectangles, go straight to the bounding box.
    if rects.len() <= MAX_DAMAGE_RECTS * 8 {
        let mut kept: Vec<Rect> = Vec::with_capacity(rects.len());
        for (i, r) in rects.iter().enumerate() {
            let inside_other = rects.iter().enumerate().any(|(j, o)| j != i && contains(*o, *r));
            if !inside_other {
                kept.push(*r);
            }
        }
        rects = kept;
    }
    let area: u64 = rects.iter().map(|r| r.area()).sum();
    if area > half_screen {
        return Damage::Full;
    }
    if rects.len() > MAX_DAMAGE_RECTS {
        let bound = bounding(&rects);
        if bound.area() > half_screen {
            return Damage::Full;
        }
        return Damage::Rects(vec![bound]);
    }
    Damage::Rects(rects)
}

/// Whether `outer` holds all of `inner`.
fn contains(outer: Rect, inner: Rect) -> bool {
    inner.x >= outer.x
        && inner.y >= outer.y
        && u32::from(inner.x) + u32::from(inner.width) <= u32::from(outer.x) + u32::from(outer.width)
        && u32::from(inner.y) + u32::from(inner.height) <= u32::from(outer.y) + u32::from(outer.height)
}

/// Whether the rectangles (all inside the screen) together cover every pixel of it.
fn covers_screen(rects: &[Rect], width: u16, height: u16) -> bool {
    if rects.iter().any(|r| *r == Rect::screen(width, height)) {
        return true;
    }
    let (width, height) = (u32::from(width), u32::from(height));
    let mut edges: Vec<u32> = rects
        .iter()
        .flat_map(|r| [u32::from(r.y), u32::from(r.y) + u32::from(r.height)])
        .chain([0, height])
        .collect();
    edges.sort_unstable();
    edges.dedup();
    let mut spans: Vec<(u32, u32)> = Vec::new();
    // Between two consecutive edges, every rectangle covers either all rows of the band or none.
    for band in edges.windows(2) {
        let top = band[0];
        if top >= height {
            break;
        }
        spans.clear();
        spans.extend(
            rects
                .iter()
                .filter(|r| u32::from(r.y) <= top && top < u32::from(r.y) + u32::from(r.height))
                .map(|r| (u32::from(r.x), u32::from(r.x) + u32::from(r.width))),
        );
        spans.sort_unstable();
        let mut reach = 0;
        for (start, end) in &spans {
            if *start > reach {
                return false;
            }
            reach = reach.max(*end);
        }
        if reach < width {
            return false;
        }
    }
    true
}

/// The frame hash of a BGRX image: SHA-256 over [`FRAME_HASH_DOMAIN`], the width and height (u16
/// little-endian) and the pixels as RGBA with alpha 255.
///
/// Gives the same hash as [`frame_hash_rgba`] for the same image. The caller checks that `bgrx` holds
/// `width * height` pixels; the hash covers whichever whole pixels it holds.
pub fn frame_hash_bgrx(width: u16, height: u16, bgrx: &[u8]) -> [u8; 32] {
    hash_pixels(width, height, bgrx, |px, out| {
        out[0] = px[2];
        out[1] = px[1];
        out[2] = px[0];
        out[3] = 0xff;
    })
}

/// The frame hash of an RGBA image (alpha is ignored and counted as 255), equal to
/// [`frame_hash_bgrx`] of the same image.
pub fn frame_hash_rgba(width: u16, height: u16, rgba: &[u8]) -> [u8; 32] {
    hash_pixels(width, height, rgba, |px, out| {
        out[..3].copy_from_slice(&px[..3]);
        out[3] = 0xff;
    })
}

fn hash_pixels(width: u16, height: u16, data: &[u8], convert: impl Fn(&[u8], &mut [u8])) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(FRAME_HASH_DOMAIN);
    hasher.update(width.to_le_bytes());
    hasher.update(height.to_le_bytes());
    let mut buf = vec![0u8; HASH_CHUNK_PIXELS * 4];
    for chunk in data.chunks(HASH_CHUNK_PIXELS * 4) {
        let pixels = chunk.len() / 4;
        for (px, out) in chunk.chunks_exact(4).zip(buf.chunks_exact_mut(4)) {
            convert(px, out);
        }
        hasher.update(&buf[..pixels * 4]);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use airlock_protocol::{PixelFormat, Pixels};

    use super::*;

    const W: u16 = 16;
    const H: u16 = 8;

    fn solid(width: u16, height: u16, bgrx: [u8; 4]) -> Vec<u8> {
        bgrx.repeat(usize::from(width) * usize::from(height))
    }

    fn region(x: u16, y: u16, width: u16, height: u16, bgrx: [u8; 4]) -> Pixels {
        Pixels::compress(x, y, width, height, &solid(width, height, bgrx))
    }

    fn update(seq: u64, regions: Vec<Pixels>) -> FrameUpdate {
        FrameUpdate {
            seq,
            screen_w: W,
            screen_h: H,
            captured_us: 1000 + seq,
            regions,
        }
    }

    fn started() -> Mirror {
        let mut m = Mirror::new(W, H);
        m.apply(&update(0, vec![region(0, 0, W, H, [1, 2, 3, 0])]))
            .expect("start");
        m
    }

    fn pixel(m: &Mirror, x: u16, y: u16) -> [u8; 4] {
        let i = (usize::from(y) * usize::from(m.width()) + usize::from(x)) * 4;
        [m.bgrx()[i], m.bgrx()[i + 1], m.bgrx()[i + 2], m.bgrx()[i + 3]]
    }

    /// Applies `bad` to a started mirror and checks it was refused with `want`, without changes.
    fn refused(bad: FrameUpdate, want: impl Fn(&MirrorError) -> bool) {
        let mut m = started();
        let before = m.bgrx().to_vec();
        let hash = m.hash();
        let err = m.apply(&bad).expect_err("refused");
        assert!(want(&err), "unexpected error: {err}");
        assert_eq!(m.bgrx(), &before[..]);
        assert_eq!(m.frame(), 1);
        assert_eq!(m.hash(), hash);
        assert!(m.awaiting_start());
    }

    #[test]
    fn new_mirror_is_black_and_awaits_a_start() {
        let m = Mirror::new(W, H);
        assert_eq!(m.frame(), 0);
        assert_eq!(m.bgrx().len(), 16 * 8 * 4);
        assert!(m.bgrx().iter().all(|b| *b == 0));
        assert!(m.awaiting_start());
        assert_eq!((m.width(), m.height(), m.captured_us()), (W, H, 0));
    }

    #[test]
    fn a_stream_starts_with_a_full_frame_and_goes_on() {
        let mut m = Mirror::new(W, H);
        let a = m
            .apply(&update(0, vec![region(0, 0, W, H, [1, 2, 3, 0])]))
            .expect("start");
        assert_eq!(a.frame, 1);
        assert_eq!(a.rects, vec![Rect::screen(W, H)]);
        assert_eq!(a.captured_us, 1000);
        assert_eq!(pixel(&m, 15, 7), [1, 2, 3, 0]);
        let b = m
            .apply(&update(1, vec![region(2, 3, 4, 2, [9, 8, 7, 0])]))
            .expect("next");
        assert_eq!(b.frame, 2);
        assert_eq!(m.captured_us(), 1001);
        assert_eq!(
            b.rects,
            vec![Rect {
                x: 2,
                y: 3,
                width: 4,
                height: 2
            }]
        );
        assert!(!m.awaiting_start());
    }

    #[test]
    fn a_start_may_be_made_of_several_regions() {
        let mut m = Mirror::new(W, H);
        let parts = vec![
            region(0, 0, W, 3, [1, 1, 1, 0]),
            region(0, 3, 5, 5, [2, 2, 2, 0]),
            region(4, 3, 12, 5, [3, 3, 3, 0]),
        ];
        m.apply(&update(0, parts)).expect("covered");
        assert_eq!(pixel(&m, 0, 0), [1, 1, 1, 0]);
        assert_eq!(pixel(&m, 0, 7), [2, 2, 2, 0]);
        assert_eq!(pixel(&m, 4, 7), [3, 3, 3, 0]);
    }

    #[test]
    fn pixels_land_where_they_should() {
        let mut m = started();
        let mut data = Vec::new();
        for i in 0..6u8 {
            data.extend_from_slice(&[i, 10 + i, 20 + i, 0]);
        }
        // A 3x2 rectangle at (5, 4): pixels 0 1 2 on row 4, 3 4 5 on row 5.
        m.apply(&update(1, vec![Pixels::compress(5, 4, 3, 2, &data)]))
            .expect("apply");
        assert_eq!(pixel(&m, 5, 4), [0, 10, 20, 0]);
        assert_eq!(pixel(&m, 7, 4), [2, 12, 22, 0]);
        assert_eq!(pixel(&m, 5, 5), [3, 13, 23, 0]);
        assert_eq!(pixel(&m, 7, 5), [5, 15, 25, 0]);
        assert_eq!(pixel(&m, 4, 4), [1, 2, 3, 0]);
        assert_eq!(pixel(&m, 8, 5), [1, 2, 3, 0]);
        assert_eq!(pixel(&m, 5, 3), [1, 2, 3, 0]);
        assert_eq!(pixel(&m, 5, 6), [1, 2, 3, 0]);
    }

    #[test]
    fn first_update_must_have_sequence_zero() {
        let mut m = Mirror::new(W, H);
        let err = m
            .apply(&update(3, vec![region(0, 0, W, H, [1, 2, 3, 0])]))
            .expect_err("refused");
        assert_eq!(err, MirrorError::NotAStart { got: 3 });
        assert_eq!(m.frame(), 0);
        assert!(m.bgrx().iter().all(|b| *b == 0));
    }

    #[test]
    fn first_update_must_cover_the_screen() {
        let mut m = Mirror::new(W, H);
        let err = m
            .apply(&update(0, vec![region(0, 0, W, H - 1, [1, 2, 3, 0])]))
            .expect_err("partial");
        assert_eq!(err, MirrorError::NotFull { width: W, height: H });
        // Two corners whose bounding box is the screen still leave a hole.
        let corners = vec![region(0, 0, 8, 4, [1, 1, 1, 0]), region(8, 4, 8, 4, [1, 1, 1, 0])];
        assert!(matches!(
            m.apply(&update(0, corners)),
            Err(MirrorError::NotFull { .. })
        ));
        assert!(matches!(
            m.apply(&update(0, vec![])),
            Err(MirrorError::NotFull { .. })
        ));
        assert_eq!(m.frame(), 0);
        assert!(m.bgrx().iter().all(|b| *b == 0));
    }

    #[test]
    fn a_gap_is_refused_and_needs_a_restart() {
        refused(update(2, vec![region(0, 0, 1, 1, [5, 5, 5, 0])]), |e| {
            *e == MirrorError::Gap { expected: 1, got: 2 }
        });
        refused(update(0, vec![region(0, 0, 1, 1, [5, 5, 5, 0])]), |e| {
            *e == MirrorError::Gap { expected: 1, got: 0 }
        });
        let mut m = started();
        assert!(m
            .apply(&update(5, vec![region(0, 0, 1, 1, [5, 5, 5, 0])]))
            .is_err());
        // After a refusal the next update must be a new stream, even with the once-expected number.
        assert!(matches!(
            m.apply(&update(1, vec![region(0, 0, 1, 1, [5, 5, 5, 0])])),
            Err(MirrorError::NotAStart { got: 1 })
        ));
        let a = m
            .apply(&update(0, vec![region(0, 0, W, H, [6, 6, 6, 0])]))
            .expect("restart");
        assert_eq!(a.frame, 2);
        assert_eq!(pixel(&m, 3, 3), [6, 6, 6, 0]);
    }

    #[test]
    fn restart_expects_a_new_stream() {
        let mut m = started();
        m.restart();
        assert!(m.awaiting_start());
        assert!(m
            .apply(&update(1, vec![region(0, 0, 1, 1, [5, 5, 5, 0])]))
            .is_err());
        m.apply(&update(0, vec![region(0, 0, W, H, [6, 6, 6, 0])]))
            .expect("restart");
        m.apply(&update(1, vec![region(0, 0, 1, 1, [5, 5, 5, 0])]))
            .expect("next");
        assert_eq!(m.frame(), 3);
    }

    #[test]
    fn wrong_screen_size_is_refused() {
        let mut bad = update(1, vec![region(0, 0, 1, 1, [5, 5, 5, 0])]);
        bad.screen_w = 32;
        refused(bad, |e| {
            *e == MirrorError::ScreenSize {
                got_w: 32,
                got_h: H,
                want_w: W,
                want_h: H,
            }
        });
        let err = MirrorError::ScreenSize {
            got_w: 32,
            got_h: 8,
            want_w: 16,
            want_h: 8,
        };
        assert_eq!(
            err.to_string(),
            "the update is for a 32x8 screen, the mirror is 16x8"
        );
    }

    #[test]
    fn too_many_regions_are_refused() {
        let regions = vec![region(0, 0, 1, 1, [5, 5, 5, 0]); MAX_REGIONS + 1];
        refused(
            update(1, regions),
            |e| matches!(e, MirrorError::TooManyRegions { count, .. } if *count == MAX_REGIONS + 1),
        );
    }

    #[test]
    fn out_of_bounds_and_empty_regions_are_refused() {
        // The first region is fine: it must not be copied either.
        let regions = vec![
            region(0, 0, 2, 2, [5, 5, 5, 0]),
            region(10, 4, 7, 1, [5, 5, 5, 0]),
        ];
        refused(update(1, regions), |e| {
            matches!(
                e,
                MirrorError::Region {
                    index: 1,
                    source: PixelsError::OutOfScreen { .. }
                }
            )
        });
        refused(
            update(1, vec![region(u16::MAX, u16::MAX, 1, 1, [5, 5, 5, 0])]),
            |e| matches!(e, MirrorError::Region { index: 0, .. }),
        );
        let empty = Pixels::compress(1, 1, 0, 3, &[]);
        refused(update(1, vec![empty]), |e| {
            matches!(
                e,
                MirrorError::EmptyRegion {
                    index: 0,
                    width: 0,
                    ..
                }
            )
        });
    }

    #[test]
    fn oversized_and_corrupt_pixels_are_refused() {
        // Data for 2x2 claimed as 3x3.
        let mut lie = region(0, 0, 2, 2, [5, 5, 5, 0]);
        lie.width = 3;
        lie.height = 3;
        refused(update(1, vec![region(4, 4, 1, 1, [7, 7, 7, 0]), lie]), |e| {
            matches!(
                e,
                MirrorError::Region {
                    index: 1,
                    source: PixelsError::Size { .. }
                }
            )
        });
        // Right size prefix, garbage body.
        let mut lz4 = (4u32 * 4 * 4).to_le_bytes().to_vec();
        lz4.extend_from_slice(&[0xff; 7]);
        let corrupt = Pixels {
            x: 0,
            y: 0,
            width: 4,
            height: 4,
            format: PixelFormat::Bgrx8888,
            lz4,
        };
        refused(update(1, vec![corrupt]), |e| {
            matches!(
                e,
                MirrorError::Region {
                    index: 0,
                    source: PixelsError::Corrupt(_)
                }
            )
        });
        let short = Pixels {
            x: 0,
            y: 0,
            width: 1,
            height: 1,
            format: PixelFormat::Bgrx8888,
            lz4: vec![1],
        };
        refused(update(1, vec![short]), |e| {
            matches!(e, MirrorError::Region { .. })
        });
    }

    #[test]
    fn heartbeat_keeps_the_frame() {
        let mut m = started();
        let hash = m.hash();
        let a = m.apply(&update(1, vec![])).expect("heartbeat");
        assert_eq!(
            a,
            Applied {
                frame: 1,
                rects: vec![],
                captured_us: 1001
            }
        );
        assert_eq!(m.frame(), 1);
        assert_eq!(m.captured_us(), 1000);
        assert_eq!(m.hash(), hash);
        assert_eq!(m.damage_since(1), Damage::None);
        // The sequence still advanced.
        m.apply(&update(2, vec![region(0, 0, 1, 1, [5, 5, 5, 0])]))
            .expect("next");
        assert_eq!(m.frame(), 2);
    }

    #[test]
    fn hash_is_stable_and_follows_pixels() {
        let mut m = started();
        let first = m.hash();
        assert_eq!(m.hash(), first);
        assert_eq!(first, frame_hash_bgrx(W, H, m.bgrx()));
        let mut other = started();
        assert_eq!(other.hash(), first);
        other
            .apply(&update(1, vec![region(9, 5, 1, 1, [1, 2, 4, 0])]))
            .expect("one pixel");
        assert_ne!(other.hash(), first);
        // The same pixels again: the same hash as before.
        other
            .apply(&update(2, vec![region(9, 5, 1, 1, [1, 2, 3, 0])]))
            .expect("back");
        assert_eq!(other.hash(), first);
        // The unused X byte does not count.
        other
            .apply(&update(3, vec![region(0, 0, 1, 1, [1, 2, 3, 99])]))
            .expect("x byte");
        assert_eq!(other.hash(), first);
        // The size is part of the hash.
        assert_ne!(frame_hash_bgrx(8, 16, m.bgrx()), frame_hash_bgrx(16, 8, m.bgrx()));
    }

    #[test]
    fn bgrx_and_rgba_hashes_agree() {
        let (w, h) = (77u16, 61u16); // More than one hashing chunk, odd sizes.
        let mut bgrx = Vec::new();
        let mut rgba = Vec::new();
        for i in 0..u32::from(w) * u32::from(h) {
            let (r, g, b) = ((i % 251) as u8, (i * 7 % 253) as u8, (i * 13 % 255) as u8);
            bgrx.extend_from_slice(&[b, g, r, 0]);
            rgba.extend_from_slice(&[r, g, b, 255]);
        }
        assert_eq!(frame_hash_bgrx(w, h, &bgrx), frame_hash_rgba(w, h, &rgba));
        rgba[5] ^= 1;
        assert_ne!(frame_hash_bgrx(w, h, &bgrx), frame_hash_rgba(w, h, &rgba));
    }

    #[test]
    fn damage_since_recent_frames() {
        let mut m = started();
        let r1 = Rect {
            x: 1,
            y: 1,
            width: 2,
            height: 2,
        };
        let r2 = Rect {
            x: 10,
            y: 5,
            width: 3,
            height: 1,
        };
        m.apply(&update(1, vec![region(1, 1, 2, 2, [5, 5, 5, 0])]))
            .expect("1");
        m.apply(&update(2, vec![region(10, 5, 3, 1, [5, 5, 5, 0])]))
            .expect("2");
        // The same rectangle again, and one inside it.
        m.apply(&update(
            3,
            vec![
                region(10, 5, 3, 1, [6, 6, 6, 0]),
                region(11, 5, 1, 1, [6, 6, 6, 0]),
            ],
        ))
        .expect("3");
        assert_eq!(m.frame(), 4);
        assert_eq!(m.damage_since(4), Damage::None);
        // Frame 2 brought r1, frames 3 and 4 brought r2 (and a rectangle inside it).
        assert_eq!(m.damage_since(3), Damage::Rects(vec![r2]));
        assert_eq!(m.damage_since(2), Damage::Rects(vec![r2]));
        // Frame 1 is the full start; what came after it is small.
        assert_eq!(m.damage_since(1), Damage::Rects(vec![r1, r2]));
        assert_eq!(m.damage_since(0), Damage::Full);
        assert_eq!(m.bounding_damage_since(4), None);
        assert_eq!(m.bounding_damage_since(3), Some(r2));
        assert_eq!(m.bounding_damage_since(1), Some(r1.union(r2)));
        assert_eq!(m.bounding_damage_since(0), Some(Rect::screen(W, H)));
    }

    #[test]
    fn damage_from_the_future_or_a_restart_is_full() {
        let mut m = started();
        assert_eq!(m.damage_since(2), Damage::Full);
        assert_eq!(m.damage_since(u64::MAX), Damage::Full);
        m.restart();
        m.apply(&update(0, vec![region(0, 0, W, H, [6, 6, 6, 0])]))
            .expect("restart");
        assert_eq!(m.damage_since(1), Damage::Full);
        let fresh = Mirror::new(W, H);
        assert_eq!(fresh.damage_since(0), Damage::None);
        assert_eq!(fresh.damage_since(1), Damage::Full);
    }

    #[test]
    fn damage_past_the_ring_is_full() {
        let mut m = started();
        for seq in 1..=DAMAGE_HISTORY as u64 + 5 {
            m.apply(&update(seq, vec![region(0, 0, 1, 1, [seq as u8, 0, 0, 0])]))
                .expect("small");
        }
        let now = m.frame();
        assert_eq!(now, DAMAGE_HISTORY as u64 + 6);
        let one = Damage::Rects(vec![Rect {
            x: 0,
            y: 0,
            width: 1,
            height: 1,
        }]);
        assert_eq!(m.damage_since(now - 1), one);
        assert_eq!(m.damage_since(now - DAMAGE_HISTORY as u64), one);
        assert_eq!(m.damage_since(now - DAMAGE_HISTORY as u64 - 1), Damage::Full);
        assert_eq!(m.damage_since(1), Damage::Full);
    }

    #[test]
    fn large_or_scattered_damage_is_merged() {
        let mut m = started();
        // More than half the screen.
        m.apply(&update(1, vec![region(0, 0, W, 5, [5, 5, 5, 0])]))
            .expect("big");
        assert_eq!(m.damage_since(1), Damage::Full);
        // Many single pixels in a small corner: one bounding box.
        let (w, h) = (64u16, 64u16);
        let mut m = Mirror::new(w, h);
        m.apply(&FrameUpdate {
            seq: 0,
            screen_w: w,
            screen_h: h,
            captured_us: 0,
            regions: vec![Pixels::compress(0, 0, w, h, &solid(w, h, [0, 0, 0, 0]))],
        })
        .expect("start");
        let dots: Vec<Pixels> = (0..100u16)
            .map(|i| region(i % 10 * 2, i / 10 * 2, 1, 1, [1, 1, 1, 0]))
            .collect();
        m.apply(&FrameUpdate {
            seq: 1,
            screen_w: w,
            screen_h: h,
            captured_us: 0,
            regions: dots,
        })
        .expect("dots");
        assert_eq!(
            m.damage_since(1),
            Damage::Rects(vec![Rect {
                x: 0,
                y: 0,
                width: 19,
                height: 19
            }])
        );
    }

    #[test]
    fn coverage_check() {
        let r = |x, y, width, height| Rect { x, y, width, height };
        assert!(covers_screen(&[r(0, 0, 4, 4)], 4, 4));
        assert!(covers_screen(&[r(0, 0, 4, 2), r(0, 2, 4, 2)], 4, 4));
        assert!(covers_screen(&[r(0, 0, 3, 4), r(1, 0, 3, 4)], 4, 4));
        assert!(!covers_screen(&[r(0, 0, 2, 4), r(3, 0, 1, 4)], 4, 4));
        assert!(!covers_screen(&[r(0, 0, 4, 1), r(0, 2, 4, 2)], 4, 4));
        assert!(!covers_screen(&[], 4, 4));
    }
}
