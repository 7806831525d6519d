//! When to encode: a pure pacer for one encoder stream.
//!
//! Times are milliseconds on the driver's monotonic clock (the same `now_ms` the adaptation
//! controller takes). The pacer encodes only when something changed or a keyframe is wanted, never
//! more often than once per frame interval (`ceil(1000 / fps)` ms, so the rate never exceeds `fps`).
//! A change after an idle period longer than the interval encodes at once (lowest latency for the
//! first change); a change soon after an encode waits for the next slot, where the driver encodes
//! the screen as it is then (changes in between coalesce into one frame).
//!
//! There is no heartbeat: an idle screen sends nothing. Neither transport needs one (WebRTC keeps
//! the connection alive with its own STUN/RTCP traffic, the WebSocket with pings), and a decoder
//! keeps showing its last frame. A viewer that joins or loses its decoder state asks for a keyframe
//! instead (`keyframe_wanted`).
//!
//! ```
//! use airlock_streaming::pace::{Pace, Pacer};
//!
//! let mut pacer = Pacer::new(10); // one frame per 100 ms
//! assert_eq!(pacer.poll(0, false, false), Pace::Idle);
//! assert_eq!(pacer.poll(5, true, false), Pace::EncodeNow);
//! pacer.encoded(5);
//! assert_eq!(pacer.poll(20, true, false), Pace::WaitUntil(105));
//! ```

/// What the driver should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Encode a frame now (then call [`Pacer::encoded`]).
    EncodeNow,
    /// Something is waiting; poll again at this time (ms).
    WaitUntil(u64),
    /// Nothing to encode; poll again when the screen changes or a keyframe is wanted.
    Idle,
}

/// Paces the encodes of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pacer {
    fps: u32,
    last_encode_ms: Option<u64>,
}

impl Pacer {
    /// A pacer allowing `fps` frames per second (0 counts as 1), with nothing encoded yet.
    pub fn new(fps: u32) -> Pacer {
        Pacer {
            fps: fps.max(1),
            last_encode_ms: None,
        }
    }

    /// Changes the frame rate (0 counts as 1). The next slot is the last encode plus the new interval.
    pub fn set_fps(&mut self, fps: u32) {
        self.fps = fps.max(1);
    }

    /// The frame rate.
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// The minimum time between two encodes: `ceil(1000 / fps)` ms.
    pub fn interval_ms(&self) -> u64 {
        1000u64.div_ceil(u64::from(self.fps))
    }

    /// The earliest time the next encode may happen (`None`: any time, nothing encoded yet).
    pub fn next_slot_ms(&self) -> Option<u64> {
        self.last_encode_ms.map(|t| t.saturating_add(self.interval_ms()))
    }

    /// What to do at `now_ms`, given whether the screen changed since the last encode (`dirty`) and
    /// whether a keyframe is wanted.
    pub fn poll(&self, now_ms: u64, dirty: bool, keyframe_wanted: bool) -> Pace {
        if !dirty && !keyframe_wanted {
            return Pace::Idle;
        }
        match self.next_slot_ms() {
            Some(slot) if now_ms < slot => Pace::WaitUntil(slot),
            Some(_) | None => Pace::EncodeNow,
        }
    }

    /// A frame was encoded at `now_ms`.
    pub fn encoded(&mut self, now_ms: u64) {
        self.last_encode_ms = Some(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_until_something_happens() {
        let mut pacer = Pacer::new(30);
        assert_eq!(pacer.poll(0, false, false), Pace::Idle);
        pacer.encoded(0);
        for now in [1, 33, 34, 1000, 100_000] {
            assert_eq!(pacer.poll(now, false, false), Pace::Idle, "at {now}");
        }
    }

    #[test]
    fn table() {
        // (fps, last encode, now, dirty, keyframe wanted, expected)
        type Case = (u32, Option<u64>, u64, bool, bool, Pace);
        let cases: &[Case] = &[
            // First change ever: at once.
            (30, None, 0, true, false, Pace::EncodeNow),
            (5, None, 12_345, true, false, Pace::EncodeNow),
            // First change after an idle period: at once.
            (30, Some(0), 5_000, true, false, Pace::EncodeNow),
            (5, Some(1_000), 1_200, true, false, Pace::EncodeNow),
            // A change right after an encode waits for the slot (30 fps: 34 ms; 15 fps: 67 ms).
            (30, Some(1_000), 1_010, true, false, Pace::WaitUntil(1_034)),
            (15, Some(1_000), 1_066, true, false, Pace::WaitUntil(1_067)),
            (15, Some(1_000), 1_067, true, false, Pace::EncodeNow),
            (5, Some(1_000), 1_001, true, false, Pace::WaitUntil(1_200)),
            // A keyframe with no change still encodes, at the same pace.
            (30, None, 7, false, true, Pace::EncodeNow),
            (30, Some(1_000), 1_100, false, true, Pace::EncodeNow),
            (30, Some(1_000), 1_020, false, true, Pace::WaitUntil(1_034)),
            (30, Some(1_000), 1_020, true, true, Pace::WaitUntil(1_034)),
            // 0 fps counts as 1.
            (0, Some(1_000), 1_500, true, false, Pace::WaitUntil(2_000)),
        ];
        for &(fps, last, now, dirty, keyframe, expected) in cases {
            let mut pacer = Pacer::new(fps);
            if let Some(t) = last {
                pacer.encoded(t);
            }
            assert_eq!(
                pacer.poll(now, dirty, keyframe),
                expected,
                "fps {fps}, last {last:?}, now {now}, dirty {dirty}, keyframe {keyframe}"
            );
        }
    }

    #[test]
    fn fps_change_moves_the_next_slot() {
        let mut pacer = Pacer::new(5);
        pacer.encoded(1_000);
        assert_eq!(pacer.poll(1_050, true, false), Pace::WaitUntil(1_200));
        pacer.set_fps(30);
        assert_eq!(pacer.fps(), 30);
        assert_eq!(pacer.poll(1_020, true, false), Pace::WaitUntil(1_034));
        assert_eq!(pacer.poll(1_050, true, false), Pace::EncodeNow);
        pacer.set_fps(1);
        assert_eq!(pacer.poll(1_050, true, false), Pace::WaitUntil(2_000));
    }

    #[test]
    fn never_faster_than_fps_under_constant_change() {
        for fps in [1, 2, 5, 15, 24, 30, 60] {
            let mut pacer = Pacer::new(fps);
            let mut encodes = Vec::new();
            // The screen changes every millisecond for 10 s; the driver polls every millisecond.
            for now in 0..10_000u64 {
                if pacer.poll(now, true, false) == Pace::EncodeNow {
                    pacer.encoded(now);
                    encodes.push(now);
                }
            }
            assert!(encodes.windows(2).all(|w| w[1] - w[0] >= pacer.interval_ms()));
            let expected = 10_000 / pacer.interval_ms();
            let got = encodes.len() as u64;
            assert!(
                got <= u64::from(fps) * 10 && got + 1 >= expected,
                "fps {fps}: {got} encodes"
            );
        }
    }
}
