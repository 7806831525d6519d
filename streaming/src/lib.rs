//! Adaptive streaming of sandbox screens to operators.
//!
//! The pure parts take time as input and do no I/O: [`mirror`] (the host-side copy of a guest screen
//! built from damage regions), [`adapt`] (per-viewer decisions: command view, stills or video; codec,
//! frame rate, bitrate), [`pace`] (when to encode), [`wire`] (the binary and JSON messages viewers
//! exchange with the server), [`still`] (thumbnails and changed-region stills) and [`refine`] (which
//! regions to send again losslessly once they rest). [`encode`] wraps
//! the H.264 (openh264) and VP8 (libvpx) encoders. [`rtc`] is the WebRTC transport.

pub mod adapt;
pub mod encode;
pub mod hub;
pub mod mirror;
pub mod pace;
pub mod refine;
pub mod rtc;
pub mod still;
pub mod wire;

/// A rectangle of the screen, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct Rect {
    /// Left edge.
    pub x: u16,
    /// Top edge.
    pub y: u16,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
}

impl Rect {
    /// The whole screen.
    pub fn screen(width: u16, height: u16) -> Rect {
        Rect {
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    /// The smallest rectangle holding both.
    pub fn union(self, other: Rect) -> Rect {
        let x0 = self.x.min(other.x);
        let y0 = self.y.min(other.y);
        let x1 = (self.x as u32 + self.width as u32).max(other.x as u32 + other.width as u32);
        let y1 = (self.y as u32 + self.height as u32).max(other.y as u32 + other.height as u32);
        Rect {
            x: x0,
            y: y0,
            width: (x1 - x0 as u32).min(u16::MAX as u32) as u16,
            height: (y1 - y0 as u32).min(u16::MAX as u32) as u16,
        }
    }

    /// Whether the two share at least one pixel.
    pub fn intersects(self, other: Rect) -> bool {
        let (ax1, ay1) = (
            u32::from(self.x) + u32::from(self.width),
            u32::from(self.y) + u32::from(self.height),
        );
        let (bx1, by1) = (
            u32::from(other.x) + u32::from(other.width),
            u32::from(other.y) + u32::from(other.height),
        );
        u32::from(self.x) < bx1
            && u32::from(other.x) < ax1
            && u32::from(self.y) < by1
            && u32::from(other.y) < ay1
    }

    /// Pixels covered.
    pub fn area(self) -> u64 {
        self.width as u64 * self.height as u64
    }
}

/// A video codec.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, ts_rs::TS,
)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// H.264 constrained baseline (openh264), Annex B access units.
    H264,
    /// VP8 (libvpx).
    Vp8,
}

impl Codec {
    /// The name used on the wire and in SDP-facing code: `h264` or `vp8`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Vp8 => "vp8",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rect;

    #[test]
    fn rectangles_intersect_when_they_share_a_pixel_and_not_when_they_only_touch() {
        let r = |x, y, width, height| Rect { x, y, width, height };
        assert!(r(0, 0, 10, 10).intersects(r(9, 9, 5, 5)));
        assert!(
            !r(0, 0, 10, 10).intersects(r(10, 0, 5, 5)),
            "touching edges share no pixel"
        );
        assert!(!r(0, 0, 10, 10).intersects(r(0, 10, 5, 5)));
        assert!(
            r(u16::MAX - 1, 0, 1, 1).intersects(r(u16::MAX - 5, 0, 10, 1)),
            "no overflow at the edge"
        );
    }
}
