//! The per-viewer adaptation controller: what one viewer is shown, and at which quality.
//!
//! Pure logic: no I/O, no clock. Every input carries the time (`now_ms`, milliseconds on any monotonic
//! clock the driver chooses), and [`Controller::decide`] returns a [`Decision`]. The driver feeds events
//! ([`Controller::on_network`], [`Controller::on_content`], [`Controller::on_keyframe_request`],
//! [`Controller::on_backlog_drop`], [`Controller::set_viewer`]), calls `decide` after each of them, and
//! calls it again at [`Controller::next_wakeup`] when nothing else happens.
//!
//! # Levels
//!
//! A viewer is at one level of a single ladder, lowest first:
//! **Command** (the command view: the agent's steps with small stills and a thumbnail of at most
//! [`COMMAND_FPS`]/s in [`COMMAND_BITRATE_BPS`]) < **Stills** (lossless stills of changed regions at
//! [`STILLS_FPS`]/s) < **Video [`Tier::Low`]** < **Video [`Tier::Medium`]** < **Video [`Tier::High`]**.
//! Encodes are shared per (sandbox, codec, tier), so video quality is only these three tiers, all at
//! full resolution: there is no resolution knob (text must stay sharp); tiers trade frame rate (and the
//! bitrate that goes with it).
//!
//! | tier | fps | bitrate | needs a bandwidth estimate of |
//! |---|---|---|---|
//! | Low | 5 | 300 kb/s | 375 kb/s |
//! | Medium | 15 | 1 Mb/s | 1.25 Mb/s |
//! | High | 30 | 2 Mb/s | 2.5 Mb/s |
//!
//! The level shown is the lowest of three bounds: what the viewer's **role** wants, what the latest
//! **measurements** allow (the cap), and the **ceiling** (the adaptive state: it falls at once on bad
//! news and climbs one level per [`RECOVERY_HOLD_MS`] of good news).
//!
//! # Rules
//!
//! | bound | condition | effect |
//! |---|---|---|
//! | role | neither focused nor controlling | Command |
//! | role | transport is [`Transport::CommandOnly`] | at most Stills |
//! | role | no codec in common with the server ([`SERVER_CODECS`]) | at most Stills |
//! | role | controlling, or watching while a human holds the lease | Video High (a watcher then shares the controller's encode) |
//! | role | watching the agent, screen busy (> [`FAST_CONTENT_RATE`] changes/s) | Video High |
//! | role | watching the agent, screen slow for [`CONTENT_HOLD_MS`] (and at start) | Video Medium |
//! | cap | smoothed bandwidth estimate < [`COMMAND_BELOW_BPS`] | Command |
//! | cap | [`HEADROOM`] × estimate below the Low tier's bitrate | Stills |
//! | cap | otherwise | the highest tier whose bitrate ≤ [`HEADROOM`] × estimate |
//! | cap | smoothed loss ≥ [`EXTREME_LOSS`] | Command |
//! | cap | a loss or bandwidth value older than [`STALE_MS`] | ignored |
//! | ceiling | no measurement yet | Medium for a watcher, High for the controlling viewer |
//! | ceiling | the cap falls below it | falls to the cap at once (and starts the cooldown below) |
//! | ceiling | loss burst: smoothed loss ≥ [`LOSS_BURST`] | one level below the current level, not below Video Low; at most once per [`STEP_DOWN_COOLDOWN_MS`] |
//! | ceiling | lagging client: backlog > [`MAX_BACKLOG_FRAMES`] + frames normally in flight (fps × baseline RTT), or backlog bytes > max([`MAX_BACKLOG_BYTES`], 1 s of the current bitrate), or smoothed RTT > max(3 × baseline, baseline + [`RTT_MARGIN_MS`]) | one level below the current level, not below Video Low (a slow client gets fewer frames, not stills: only measured bandwidth or loss leave video); at most once per [`STEP_DOWN_COOLDOWN_MS`] |
//! | ceiling | the driver dropped frames ([`Controller::on_backlog_drop`]) | as a lagging client |
//! | ceiling | the cap has been above it, with no bad sample (loss > [`LOSS_GOOD`], lag) and no fall, for [`RECOVERY_HOLD_MS`] | one level up; the next level needs another hold |
//!
//! The codec is the first of [`SERVER_CODECS`] (H.264, then VP8) that the viewer can decode: a
//! server-wide order lets more viewers share one encode.
//!
//! # Keyframes
//!
//! `keyframe: true` means "the next picture must be self-contained". It is never set in Command mode
//! (the command view keeps no decoder state). It is set exactly when:
//! - the viewer enters Video or Stills (joining counts), or the codec or tier changes (a new stream);
//! - the driver dropped frames ([`Controller::on_backlog_drop`]);
//! - the client asked ([`Controller::on_keyframe_request`]), at most once per
//!   [`KEYFRAME_MIN_INTERVAL_MS`] after the previous keyframe of any cause; an ask inside that interval
//!   is kept and emitted when it expires ([`Controller::next_wakeup`] says when). A keyframe sent for
//!   another reason answers a pending ask.
//!
//! # Smoothing
//!
//! RTT: EWMA (α = 0.25) against a baseline, the minimum over the last 15–30 s. Loss: EWMA (α = 0.5).
//! Bandwidth: EWMA that follows drops faster (α = 0.5) than rises (α = 0.25).
//!
//! [`AckEstimator`] turns the acknowledgements of the WebSocket path into [`NetSample`]s.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::Codec;

/// Share of the bandwidth estimate that video may use.
pub const HEADROOM: f64 = 0.8;
/// A bandwidth estimate below this (bits/s) leaves only the command view.
pub const COMMAND_BELOW_BPS: u64 = 40_000;
/// Smoothed loss at or above this fraction leaves only the command view.
pub const EXTREME_LOSS: f64 = 0.25;
/// Smoothed loss at or above this fraction is a loss burst: step down.
pub const LOSS_BURST: f64 = 0.05;
/// Smoothed loss above this fraction is not good enough to step up.
pub const LOSS_GOOD: f64 = 0.02;
/// Unacknowledged frames tolerated beyond those normally in flight.
pub const MAX_BACKLOG_FRAMES: u32 = 3;
/// Queued bytes always tolerated (a scroll keyframe is up to ~150 KB; one second of bitrate is
/// tolerated when that is more).
pub const MAX_BACKLOG_BYTES: u64 = 64_000;
/// Smoothed RTT this far above the baseline (and at least 3 × baseline) means a lagging client.
pub const RTT_MARGIN_MS: f64 = 150.0;
/// Good network needed before stepping up one level.
pub const RECOVERY_HOLD_MS: u64 = 4_000;
/// Minimum time between two step-downs caused by loss or lag.
pub const STEP_DOWN_COOLDOWN_MS: u64 = 1_000;
/// Minimum time between a keyframe and a client-requested keyframe.
pub const KEYFRAME_MIN_INTERVAL_MS: u64 = 500;
/// Screen changes per second above which the screen is busy.
pub const FAST_CONTENT_RATE: f64 = 10.0;
/// How long the screen must stay slow before watchers of the agent drop to Medium.
pub const CONTENT_HOLD_MS: u64 = 10_000;
/// Loss and bandwidth values older than this are ignored.
pub const STALE_MS: u64 = 10_000;
/// Thumbnail rate of the command view.
pub const COMMAND_FPS: u32 = 1;
/// Budget of the command view (bits/s).
pub const COMMAND_BITRATE_BPS: u32 = 16_000;
/// Maximum rate of stills.
pub const STILLS_FPS: u32 = 2;
/// Maximum budget of stills (bits/s). The budget is [`HEADROOM`] × the bandwidth estimate, rounded
/// down to 32 kb/s × a power of two (so it changes only when the estimate halves or doubles).
pub const STILLS_MAX_BITRATE_BPS: u32 = 1_000_000;
/// Budget of stills when no bandwidth estimate is known (bits/s).
pub const STILLS_DEFAULT_BITRATE_BPS: u32 = 240_000;
/// Codecs the server encodes, in the server's order of preference.
pub const SERVER_CODECS: [Codec; 2] = [Codec::H264, Codec::Vp8];

const RTT_ALPHA: f64 = 0.25;
const LOSS_ALPHA: f64 = 0.5;
const BW_ALPHA_DOWN: f64 = 0.5;
const BW_ALPHA_UP: f64 = 0.25;
const RTT_BASELINE_WINDOW_MS: u64 = 30_000;
const STILLS_MIN_BITRATE_BPS: u32 = 32_000;

/// What a viewer is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The command view: the agent's steps with small stills and a low-rate thumbnail.
    Command,
    /// Full-resolution lossless stills of changed regions.
    Stills,
    /// Encoded video.
    Video,
}

/// How frames reach the viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WebRTC: RTP video, estimates from REMB/TWCC and receiver reports.
    WebRtc,
    /// Encoded frames over a WebSocket, decoded with WebCodecs; estimates from acknowledgements.
    WebCodecs,
    /// No video decoding: command view and stills only.
    CommandOnly,
}

/// A video quality. All tiers are full resolution; they differ in frame rate and bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// 5 fps, 300 kb/s.
    Low,
    /// 15 fps, 1 Mb/s.
    Medium,
    /// 30 fps, 2 Mb/s.
    High,
}

impl Tier {
    /// All tiers, lowest first.
    pub const ALL: [Tier; 3] = [Tier::Low, Tier::Medium, Tier::High];

    /// Maximum frames per second.
    pub const fn fps(self) -> u32 {
        match self {
            Tier::Low => 5,
            Tier::Medium => 15,
            Tier::High => 30,
        }
    }

    /// Target bitrate (bits/s).
    pub const fn bitrate_bps(self) -> u32 {
        match self {
            Tier::Low => 300_000,
            Tier::Medium => 1_000_000,
            Tier::High => 2_000_000,
        }
    }

    /// The bandwidth estimate this tier needs: its bitrate over [`HEADROOM`] (bits/s).
    pub fn required_bps(self) -> u64 {
        (f64::from(self.bitrate_bps()) / HEADROOM).ceil() as u64
    }
}

/// Largest smoothed round-trip time at which a controlling WebRTC viewer gets its video on the
/// socket instead (measured on loopback: ~30 ms key-to-pixels that way against 60 ms p50 /
/// 244 ms p95 through Chromium's WebRTC receiver).
pub const SOCKET_PATH_MAX_RTT_MS: f64 = 20.0;

/// The first of [`SERVER_CODECS`] that the viewer can decode.
pub fn choose_codec(offered: &[Codec]) -> Option<Codec> {
    SERVER_CODECS.into_iter().find(|c| offered.contains(c))
}

/// One viewer of one sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// How frames reach it.
    pub transport: Transport,
    /// Codecs it can decode, in its order of preference.
    pub codecs: Vec<Codec>,
    /// Its operator opened this sandbox's session view.
    pub focused: bool,
    /// Its operator holds the control lease.
    pub controlling: bool,
    /// Some operator (this one or another) holds the control lease.
    pub human_in_control: bool,
    /// A WebRTC viewer that can also decode video sent on its socket (WebCodecs).
    pub socket_video: bool,
}

/// One network measurement; every field is optional.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NetSample {
    /// When it was measured (ms).
    pub at_ms: u64,
    /// Round-trip time (ms).
    pub rtt_ms: Option<f64>,
    /// Fraction of packets lost since the previous report, 0..=1.
    pub loss: Option<f64>,
    /// Bandwidth estimate (bits/s).
    pub bandwidth_bps: Option<u64>,
    /// Frames sent and not yet acknowledged.
    pub backlog_frames: Option<u32>,
    /// Bytes sent or queued and not yet acknowledged.
    pub backlog_bytes: Option<u64>,
}

/// What to send to one viewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// What the viewer is shown.
    pub mode: Mode,
    /// The codec, in Video mode.
    pub codec: Option<Codec>,
    /// The tier, in Video mode.
    pub tier: Option<Tier>,
    /// Maximum pictures per second (video frames, stills or thumbnails).
    pub fps: u32,
    /// Bitrate (Video) or budget (Stills, Command), bits/s.
    pub bitrate_bps: u32,
    /// Video goes on the viewer's socket (WebCodecs) rather than its WebRTC track.
    pub via_socket: bool,
    /// The next picture must be self-contained (a keyframe, a full still).
    pub keyframe: bool,
    /// Mode, codec, tier, fps or bitrate differ from the previous decision (always true for the first).
    pub changed: bool,
    /// Why the level is what it is.
    pub reason: &'static str,
}

/// A point on the quality ladder, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Command,
    Stills,
    Video(Tier),
}

impl Level {
    const TOP: Level = Level::Video(Tier::High);

    fn down(self) -> Level {
        match self {
            Level::Command | Level::Stills => Level::Command,
            Level::Video(Tier::Low) => Level::Stills,
            Level::Video(Tier::Medium) => Level::Video(Tier::Low),
            Level::Video(Tier::High) => Level::Video(Tier::Medium),
        }
    }

    fn up(self) -> Level {
        match self {
            Level::Command => Level::Stills,
            Level::Stills => Level::Video(Tier::Low),
            Level::Video(Tier::Low) => Level::Video(Tier::Medium),
            Level::Video(Tier::Medium) | Level::Video(Tier::High) => Level::Video(Tier::High),
        }
    }

    fn fps(self) -> u32 {
        match self {
            Level::Command => COMMAND_FPS,
            Level::Stills => STILLS_FPS,
            Level::Video(tier) => tier.fps(),
        }
    }

    fn bitrate_bps(self) -> u32 {
        match self {
            Level::Command => COMMAND_BITRATE_BPS,
            Level::Stills => STILLS_DEFAULT_BITRATE_BPS,
            Level::Video(tier) => tier.bitrate_bps(),
        }
    }

    /// The highest level a bandwidth estimate allows.
    fn for_bandwidth(bps: f64) -> Level {
        if bps < COMMAND_BELOW_BPS as f64 {
            return Level::Command;
        }
        Tier::ALL
            .into_iter()
            .rev()
            .find(|t| f64::from(t.bitrate_bps()) <= HEADROOM * bps)
            .map_or(Level::Stills, Level::Video)
    }
}

/// A smoothed value and when it was last updated.
#[derive(Debug, Clone, Copy)]
struct Timed {
    value: f64,
    at_ms: u64,
}

impl Timed {
    fn fresh(slot: Option<Timed>, now_ms: u64) -> Option<f64> {
        slot.filter(|t| now_ms < t.at_ms.saturating_add(STALE_MS))
            .map(|t| t.value)
    }
}

/// Minimum of the samples of the last `window/2 ..= window` ms, in constant space (two buckets).
#[derive(Debug, Clone)]
struct WindowedMin {
    window_ms: u64,
    current: Option<f64>,
    previous: Option<f64>,
    bucket_start_ms: u64,
}

impl WindowedMin {
    fn new(window_ms: u64) -> WindowedMin {
        WindowedMin {
            window_ms,
            current: None,
            previous: None,
            bucket_start_ms: 0,
        }
    }

    fn push(&mut self, value: f64, at_ms: u64) {
        let half = self.window_ms / 2;
        if at_ms >= self.bucket_start_ms.saturating_add(self.window_ms) {
            self.previous = None;
            self.current = None;
            self.bucket_start_ms = at_ms;
        } else if at_ms >= self.bucket_start_ms.saturating_add(half) {
            self.previous = self.current.take();
            self.bucket_start_ms = at_ms;
        }
        self.current = Some(self.current.map_or(value, |c| c.min(value)));
    }

    fn get(&self) -> Option<f64> {
        match (self.current, self.previous) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => None,
        }
    }
}

/// The adaptation state of one viewer. See the module docs for the rules.
#[derive(Debug, Clone)]
pub struct Controller {
    viewer: Viewer,
    codec: Option<Codec>,
    /// Any network sample seen.
    measured: bool,
    rtt: Option<f64>,
    rtt_baseline: WindowedMin,
    loss: Option<Timed>,
    bandwidth: Option<Timed>,
    ceiling: Level,
    ceiling_reason: &'static str,
    /// Good news counts from here (None: no measurement yet, no climbing).
    hold_from_ms: Option<u64>,
    last_step_down_ms: Option<u64>,
    content_fast: bool,
    content_slow_since_ms: Option<u64>,
    ask_pending: bool,
    drop_pending: bool,
    last_keyframe_ms: Option<u64>,
    last: Option<Decision>,
}

impl Controller {
    /// A controller for a viewer that joins at `now_ms`.
    pub fn new(viewer: Viewer, now_ms: u64) -> Controller {
        let mut controller = Controller {
            codec: choose_codec(&viewer.codecs),
            ceiling: default_ceiling(&viewer),
            viewer,
            measured: false,
            rtt: None,
            rtt_baseline: WindowedMin::new(RTT_BASELINE_WINDOW_MS),
            loss: None,
            bandwidth: None,
            ceiling_reason: "no measurement yet",
            hold_from_ms: None,
            last_step_down_ms: None,
            content_fast: false,
            content_slow_since_ms: None,
            ask_pending: false,
            drop_pending: false,
            last_keyframe_ms: None,
            last: None,
        };
        controller.refresh(now_ms);
        controller
    }

    /// The viewer as last set.
    pub fn viewer(&self) -> &Viewer {
        &self.viewer
    }

    /// The viewer's role, transport or codecs changed.
    pub fn set_viewer(&mut self, viewer: Viewer, now_ms: u64) {
        self.refresh(now_ms);
        self.codec = choose_codec(&viewer.codecs);
        if !self.measured {
            self.ceiling = default_ceiling(&viewer);
        }
        self.viewer = viewer;
    }

    /// A network measurement, taken at `sample.at_ms`.
    pub fn on_network(&mut self, sample: NetSample) {
        let now = sample.at_ms;
        self.refresh(now);
        if !self.measured {
            self.measured = true;
            self.hold_from_ms = Some(now);
        }
        let before = self.level(now).0;

        let mut lagging = false;
        if let Some(rtt) = sample.rtt_ms.filter(|r| r.is_finite() && *r >= 0.0) {
            self.rtt_baseline.push(rtt, now);
            let smoothed = self.rtt.map_or(rtt, |s| s + RTT_ALPHA * (rtt - s));
            self.rtt = Some(smoothed);
            if let Some(base) = self.rtt_baseline.get() {
                lagging |= smoothed > (3.0 * base).max(base + RTT_MARGIN_MS);
            }
        }
        if let Some(frames) = sample.backlog_frames {
            let in_flight = self
                .rtt_baseline
                .get()
                .map_or(0.0, |b| f64::from(before.fps()) * b / 1000.0);
            lagging |= f64::from(frames) > f64::from(MAX_BACKLOG_FRAMES) + in_flight.ceil();
        }
        if let Some(bytes) = sample.backlog_bytes {
            lagging |= bytes > MAX_BACKLOG_BYTES.max(u64::from(before.bitrate_bps()) / 8);
        }
        if let Some(loss) = sample.loss.filter(|l| l.is_finite()) {
            let loss = loss.clamp(0.0, 1.0);
            let value = Timed::fresh(self.loss, now).map_or(loss, |s| s + LOSS_ALPHA * (loss - s));
            self.loss = Some(Timed { value, at_ms: now });
        }
        if let Some(bps) = sample.bandwidth_bps {
            let bps = bps as f64;
            let value = Timed::fresh(self.bandwidth, now).map_or(bps, |s| {
                let alpha = if bps < s { BW_ALPHA_DOWN } else { BW_ALPHA_UP };
                s + alpha * (bps - s)
            });
            self.bandwidth = Some(Timed { value, at_ms: now });
        }

        let (cap, cap_reason) = self.cap(now);
        if cap <= self.ceiling {
            self.hold_from_ms = Some(now);
        }
        if cap < self.ceiling {
            self.ceiling = cap;
            self.ceiling_reason = cap_reason;
            self.last_step_down_ms = Some(now);
        }
        let loss = Timed::fresh(self.loss, now).unwrap_or(0.0);
        let lossy = sample.loss.is_some() && loss >= LOSS_BURST;
        if lagging {
            self.step_down(before, Level::Video(Tier::Low), "lagging client", now);
        } else if lossy {
            self.step_down(before, Level::Video(Tier::Low), "loss burst", now);
        } else if loss > LOSS_GOOD {
            self.hold_from_ms = Some(now);
        }
    }

    /// The screen's change rate (updates/s) as of `now_ms`.
    pub fn on_content(&mut self, change_rate: f64, now_ms: u64) {
        self.refresh(now_ms);
        if change_rate > FAST_CONTENT_RATE {
            self.content_fast = true;
            self.content_slow_since_ms = None;
        } else if self.content_fast && self.content_slow_since_ms.is_none() {
            self.content_slow_since_ms = Some(now_ms);
        }
    }

    /// The client asked for a keyframe (PLI, FIR, a decoder error).
    pub fn on_keyframe_request(&mut self, now_ms: u64) {
        self.refresh(now_ms);
        self.ask_pending = true;
    }

    /// The driver dropped queued frames to catch up with a lagging client: the next frame must be a
    /// keyframe, and the client counts as lagging.
    pub fn on_backlog_drop(&mut self, now_ms: u64) {
        self.refresh(now_ms);
        self.drop_pending = true;
        let before = self.level(now_ms).0;
        self.step_down(before, Level::Video(Tier::Low), "lagging client", now_ms);
    }

    /// What to send from `now_ms` on.
    pub fn decide(&mut self, now_ms: u64) -> Decision {
        self.refresh(now_ms);
        let (level, reason) = self.level(now_ms);
        let (mode, tier, codec) = match level {
            Level::Command => (Mode::Command, None, None),
            Level::Stills => (Mode::Stills, None, None),
            Level::Video(tier) => (Mode::Video, Some(tier), self.codec),
        };
        let bitrate_bps = match level {
            Level::Stills => self.stills_budget(now_ms),
            Level::Command | Level::Video(_) => level.bitrate_bps(),
        };
        let via_socket = mode == Mode::Video && self.socket_path(now_ms);
        let previous = self.last.as_ref();
        let new_stream = match mode {
            Mode::Command => false,
            Mode::Stills => previous.is_none_or(|p| p.mode != Mode::Stills),
            Mode::Video => previous.is_none_or(|p| {
                p.mode != Mode::Video || p.tier != tier || p.codec != codec || p.via_socket != via_socket
            }),
        };
        let ask_due = self.ask_pending
            && self
                .last_keyframe_ms
                .is_none_or(|t| now_ms >= t.saturating_add(KEYFRAME_MIN_INTERVAL_MS));
        let keyframe = match mode {
            Mode::Command => false,
            Mode::Stills | Mode::Video => new_stream || self.drop_pending || ask_due,
        };
        if keyframe || mode == Mode::Command {
            self.ask_pending = false;
            self.drop_pending = false;
        }
        if keyframe {
            self.last_keyframe_ms = Some(now_ms);
        }
        let fps = level.fps();
        let changed = previous.is_none_or(|p| {
            (p.mode, p.codec, p.tier, p.fps, p.bitrate_bps, p.via_socket)
                != (mode, codec, tier, fps, bitrate_bps, via_socket)
        });
        let decision = Decision {
            mode,
            codec,
            tier,
            fps,
            bitrate_bps,
            via_socket,
            keyframe,
            changed,
            reason,
        };
        self.last = Some(decision.clone());
        decision
    }

    /// Whether video takes the socket: always for WebCodecs viewers; for a WebRTC viewer that can
    /// decode socket video, while its operator controls the sandbox and the network is short and
    /// clean (smoothed RTT ≤ [`SOCKET_PATH_MAX_RTT_MS`], fresh loss ≤ [`LOSS_GOOD`]) — there the
    /// socket path skips the browser's jitter buffer; anywhere else RTP's loss recovery wins.
    fn socket_path(&self, now_ms: u64) -> bool {
        match self.viewer.transport {
            Transport::WebCodecs => true,
            Transport::CommandOnly => false,
            Transport::WebRtc => {
                let short = self.rtt.is_some_and(|r| r <= SOCKET_PATH_MAX_RTT_MS);
                let clean = Timed::fresh(self.loss, now_ms).is_none_or(|l| l <= LOSS_GOOD);
                self.viewer.socket_video && self.viewer.controlling && short && clean
            }
        }
    }

    /// When `decide` should be called again if no other input arrives (a held keyframe ask, the end of
    /// a recovery hold, a value going stale, the screen counting as slow). `None`: only on new input.
    /// Never earlier than `now_ms`.
    pub fn next_wakeup(&self, now_ms: u64) -> Option<u64> {
        let mut wakeups: Vec<u64> = Vec::new();
        let (level, _) = self.level(now_ms);
        if level != Level::Command {
            if self.drop_pending {
                wakeups.push(now_ms);
            }
            if self.ask_pending {
                wakeups.push(
                    self.last_keyframe_ms
                        .map_or(now_ms, |t| t + KEYFRAME_MIN_INTERVAL_MS),
                );
            }
        }
        let (desired, _) = self.desired();
        if let Some(since) = self.content_slow_since_ms {
            let (slow, _) = self.desired_for(false);
            if slow != desired {
                wakeups.push(since.saturating_add(CONTENT_HOLD_MS));
            }
        }
        let (cap, _) = self.cap(now_ms);
        for slot in [self.loss, self.bandwidth].into_iter().flatten() {
            let expiry = slot.at_ms.saturating_add(STALE_MS);
            if expiry > now_ms && cap < desired {
                wakeups.push(expiry);
            }
        }
        if let Some(hold_from) = self.hold_from_ms {
            if cap > self.ceiling && desired > self.ceiling {
                wakeups.push(hold_from.saturating_add(RECOVERY_HOLD_MS));
            }
        }
        wakeups.into_iter().min().map(|t| t.max(now_ms))
    }

    /// Applies what time alone changes: stale values, the screen turning slow, recovery steps.
    fn refresh(&mut self, now_ms: u64) {
        for slot in [&mut self.loss, &mut self.bandwidth] {
            if let Some(t) = *slot {
                let expiry = t.at_ms.saturating_add(STALE_MS);
                if now_ms >= expiry {
                    *slot = None;
                    self.hold_from_ms = self.hold_from_ms.map(|h| h.max(expiry));
                }
            }
        }
        if let Some(since) = self.content_slow_since_ms {
            if now_ms >= since.saturating_add(CONTENT_HOLD_MS) {
                self.content_fast = false;
                self.content_slow_since_ms = None;
            }
        }
        let (cap, _) = self.cap(now_ms);
        while let Some(hold_from) = self.hold_from_ms {
            let step_at = hold_from.saturating_add(RECOVERY_HOLD_MS);
            if cap <= self.ceiling || now_ms < step_at {
                break;
            }
            self.ceiling = self.ceiling.up();
            self.ceiling_reason = "recovering";
            self.hold_from_ms = Some(step_at);
        }
    }

    /// Lowers the ceiling to one level below `from`, not below `floor`, unless it stepped down less
    /// than [`STEP_DOWN_COOLDOWN_MS`] ago. Always restarts the recovery hold.
    fn step_down(&mut self, from: Level, floor: Level, reason: &'static str, now_ms: u64) {
        if self.measured {
            self.hold_from_ms = Some(now_ms);
        }
        let cooling = self
            .last_step_down_ms
            .is_some_and(|t| now_ms < t.saturating_add(STEP_DOWN_COOLDOWN_MS));
        let target = from.down().max(floor);
        if !cooling && target < self.ceiling {
            self.ceiling = target;
            self.ceiling_reason = reason;
            self.last_step_down_ms = Some(now_ms);
        }
    }

    /// The level to show and why: the lowest of role, cap and ceiling.
    fn level(&self, now_ms: u64) -> (Level, &'static str) {
        let desired = self.desired();
        let cap = self.cap(now_ms);
        let ceiling = (self.ceiling, self.ceiling_reason);
        [desired, cap, ceiling]
            .into_iter()
            .min_by_key(|(level, _)| *level)
            .unwrap_or(desired)
    }

    /// What the viewer's role asks for.
    fn desired(&self) -> (Level, &'static str) {
        self.desired_for(self.content_fast)
    }

    fn desired_for(&self, content_fast: bool) -> (Level, &'static str) {
        let viewer = &self.viewer;
        if !viewer.focused && !viewer.controlling {
            return (Level::Command, "not watching");
        }
        match viewer.transport {
            Transport::CommandOnly => return (Level::Stills, "transport carries no video"),
            Transport::WebRtc | Transport::WebCodecs => {}
        }
        if self.codec.is_none() {
            (Level::Stills, "no common codec")
        } else if viewer.controlling {
            (Level::TOP, "controlling")
        } else if viewer.human_in_control {
            (Level::TOP, "watching a human")
        } else if content_fast {
            (Level::TOP, "busy screen")
        } else {
            (Level::Video(Tier::Medium), "slow screen")
        }
    }

    /// What the current measurements allow.
    fn cap(&self, now_ms: u64) -> (Level, &'static str) {
        let mut cap = (Level::TOP, "network allows the top tier");
        if let Some(bps) = Timed::fresh(self.bandwidth, now_ms) {
            let level = Level::for_bandwidth(bps);
            if level < cap.0 {
                cap = (level, "bandwidth estimate");
            }
        }
        if Timed::fresh(self.loss, now_ms).is_some_and(|l| l >= EXTREME_LOSS) {
            cap = (Level::Command, "extreme loss");
        }
        cap
    }

    fn stills_budget(&self, now_ms: u64) -> u32 {
        match Timed::fresh(self.bandwidth, now_ms) {
            Some(bps) => {
                let target = HEADROOM * bps;
                let mut budget = STILLS_MIN_BITRATE_BPS;
                while f64::from(budget) * 2.0 <= target && budget < STILLS_MAX_BITRATE_BPS {
                    budget *= 2;
                }
                budget.min(STILLS_MAX_BITRATE_BPS)
            }
            None => STILLS_DEFAULT_BITRATE_BPS,
        }
    }
}

fn default_ceiling(viewer: &Viewer) -> Level {
    if viewer.controlling {
        Level::Video(Tier::High)
    } else {
        Level::Video(Tier::Medium)
    }
}

/// Window over which [`AckEstimator`] measures throughput.
pub const THROUGHPUT_WINDOW_MS: u64 = 2_000;
/// A frame whose transfer could have started this long before the previous acknowledgement was queued
/// behind it.
pub const QUEUE_MARGIN_MS: u64 = 20;
/// Frames at least this large measure the link even when sent on an idle link.
pub const LARGE_FRAME_BYTES: u64 = 16_000;
/// Busy time in the window needed to report a throughput.
pub const MIN_BUSY_MS: u64 = 100;
/// Or bytes measured in the window needed to report a throughput.
pub const MIN_MEASURED_BYTES: u64 = 24_000;
/// Bytes the busy time must have carried to count: a few tiny frames (typing, a cursor) whose
/// acknowledgements come late measure a busy client page, not the link (seen in Chromium: six
/// frames of 1.3 KB in all moved a controlling viewer to the command view); a slow client is the
/// lag rules' business, which step down one level at a time.
pub const MIN_BUSY_BYTES: u64 = 4_000;
const ACK_RTT_MIN_WINDOW_MS: u64 = 10_000;
const MAX_DELIVERIES: usize = 512;

#[derive(Debug, Clone, Copy)]
struct Sent {
    frame: u64,
    bytes: u64,
    sent_at_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Delivery {
    at_ms: u64,
    bytes: u64,
    busy_ms: u64,
}

/// Network samples for the WebSocket path, from frame sends and the client's acknowledgements.
///
/// Frame numbers must increase with each send; an ack acknowledges that frame and every earlier one
/// (the WebSocket is ordered).
///
/// - **RTT**: ack time − send time of the acked frame; [`AckEstimator::sample`] reports the lowest
///   since the previous sample, so one large frame's transfer time does not look like lag while
///   queueing that persists does.
/// - **Backlog**: frames and bytes sent and not acknowledged.
/// - **Throughput**: bytes over the time the link was busy delivering them, over the last
///   [`THROUGHPUT_WINDOW_MS`]. A frame's delivery took `ack − max(send + min RTT, previous ack)`; it
///   only counts when the link really was busy, i.e. the frame was queued behind the previous one (by
///   more than [`QUEUE_MARGIN_MS`]) or is large ([`LARGE_FRAME_BYTES`]); small frames on an idle link
///   only measure the sender's own rate. Reported once the window holds [`MIN_BUSY_MS`] of busy time
///   carrying at least [`MIN_BUSY_BYTES`], or [`MIN_MEASURED_BYTES`]; otherwise `None` (the link is faster than what was sent).
///
/// Limits: the minimum RTT includes the transfer time of the smallest frame seen, so when only large
/// frames were sent, a large frame on an idle link is measured high; the controller's lag detection
/// (backlog, RTT) catches what the estimate misses. A link that stays lightly used reports no
/// throughput; the controller's estimate then goes stale after [`STALE_MS`] and it probes one level
/// up after [`RECOVERY_HOLD_MS`], stepping back down if the client lags.
#[derive(Debug, Clone)]
pub struct AckEstimator {
    outstanding: VecDeque<Sent>,
    outstanding_bytes: u64,
    rtt_min: WindowedMin,
    rtt_since_sample: Option<f64>,
    last_ack_ms: Option<u64>,
    deliveries: VecDeque<Delivery>,
}

impl Default for AckEstimator {
    fn default() -> Self {
        AckEstimator::new()
    }
}

impl AckEstimator {
    /// An estimator with nothing sent.
    pub fn new() -> AckEstimator {
        AckEstimator {
            outstanding: VecDeque::new(),
            outstanding_bytes: 0,
            rtt_min: WindowedMin::new(ACK_RTT_MIN_WINDOW_MS),
            rtt_since_sample: None,
            last_ack_ms: None,
            deliveries: VecDeque::new(),
        }
    }

    /// A frame of `bytes` was sent.
    pub fn on_send(&mut self, frame: u64, bytes: u64, sent_at_ms: u64) {
        self.outstanding.push_back(Sent {
            frame,
            bytes,
            sent_at_ms,
        });
        self.outstanding_bytes += bytes;
    }

    /// The client acknowledged `frame` (and every earlier one). Returns the RTT of `frame` (ms), or
    /// `None` if nothing was outstanding up to it (a duplicate).
    pub fn on_ack(&mut self, frame: u64, acked_at_ms: u64) -> Option<f64> {
        let mut bytes = 0;
        let mut first_sent: Option<u64> = None;
        let mut last_sent: Option<u64> = None;
        while let Some(sent) = self.outstanding.front().copied().filter(|s| s.frame <= frame) {
            self.outstanding.pop_front();
            bytes += sent.bytes;
            first_sent.get_or_insert(sent.sent_at_ms);
            last_sent = Some(sent.sent_at_ms);
        }
        self.outstanding_bytes = self.outstanding_bytes.saturating_sub(bytes);
        let (first_sent, last_sent) = first_sent.zip(last_sent)?;
        let rtt = acked_at_ms.saturating_sub(last_sent);
        if let Some(rtt_min) = self.rtt_min.get() {
            let unqueued_ack = first_sent.saturating_add(rtt_min as u64);
            let queued = self
                .last_ack_ms
                .is_some_and(|prev| unqueued_ack.saturating_add(QUEUE_MARGIN_MS) < prev);
            if queued || bytes >= LARGE_FRAME_BYTES {
                let start = self
                    .last_ack_ms
                    .map_or(unqueued_ack, |prev| prev.max(unqueued_ack));
                self.deliveries.push_back(Delivery {
                    at_ms: acked_at_ms,
                    bytes,
                    busy_ms: acked_at_ms.saturating_sub(start),
                });
                if self.deliveries.len() > MAX_DELIVERIES {
                    self.deliveries.pop_front();
                }
            }
        }
        self.rtt_min.push(rtt as f64, acked_at_ms);
        self.rtt_since_sample = Some(self.rtt_since_sample.map_or(rtt as f64, |r| r.min(rtt as f64)));
        self.last_ack_ms = Some(acked_at_ms);
        Some(rtt as f64)
    }

    /// Frames sent and not acknowledged.
    pub fn backlog_frames(&self) -> u32 {
        u32::try_from(self.outstanding.len()).unwrap_or(u32::MAX)
    }

    /// Bytes sent and not acknowledged.
    pub fn backlog_bytes(&self) -> u64 {
        self.outstanding_bytes
    }

    /// The throughput over the window ending at `now_ms` (bits/s), if the link was busy enough.
    pub fn throughput_bps(&self, now_ms: u64) -> Option<u64> {
        let start = now_ms.saturating_sub(THROUGHPUT_WINDOW_MS);
        let (bytes, busy_ms) = self
            .deliveries
            .iter()
            .filter(|d| d.at_ms > start && d.at_ms <= now_ms)
            .fold((0u64, 0u64), |(b, t), d| (b + d.bytes, t + d.busy_ms));
        if (busy_ms >= MIN_BUSY_MS && bytes >= MIN_BUSY_BYTES) || bytes >= MIN_MEASURED_BYTES {
            Some(bytes * 8 * 1000 / busy_ms.max(1))
        } else {
            None
        }
    }

    /// A network sample as of `now_ms` (no loss on this path). Resets the RTT minimum reported.
    pub fn sample(&mut self, now_ms: u64) -> NetSample {
        let start = now_ms.saturating_sub(THROUGHPUT_WINDOW_MS);
        while self.deliveries.front().is_some_and(|d| d.at_ms <= start) {
            self.deliveries.pop_front();
        }
        NetSample {
            at_ms: now_ms,
            rtt_ms: self.rtt_since_sample.take(),
            loss: None,
            bandwidth_bps: self.throughput_bps(now_ms),
            backlog_frames: Some(self.backlog_frames()),
            backlog_bytes: Some(self.backlog_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: &[Codec] = &[Codec::H264, Codec::Vp8];

    fn viewer(transport: Transport, codecs: &[Codec], focused: bool, controlling: bool) -> Viewer {
        Viewer {
            transport,
            codecs: codecs.to_vec(),
            focused,
            controlling,
            human_in_control: controlling,
            socket_video: false,
        }
    }

    #[test]
    fn a_controlling_webrtc_viewer_takes_the_socket_on_a_short_clean_network() {
        let net = |at_ms: u64, rtt: f64, loss: f64| NetSample {
            at_ms,
            rtt_ms: Some(rtt),
            loss: Some(loss),
            ..NetSample::default()
        };
        let mut v = viewer(Transport::WebRtc, BOTH, true, true);
        v.socket_video = true;
        let mut c = Controller::new(v.clone(), 0);
        let d = c.decide(0);
        assert_eq!(d.mode, Mode::Video);
        assert!(!d.via_socket, "no RTT measured yet: WebRTC");
        c.on_network(net(100, 2.0, 0.0));
        let d = c.decide(100);
        assert!(d.via_socket && d.changed && d.keyframe, "{d:?}");
        // A lossy link goes back to RTP (with a keyframe on it).
        for t in (200..2_000).step_by(100) {
            c.on_network(net(t, 2.0, 0.3));
        }
        let d = c.decide(2_000);
        assert!(!d.via_socket, "{d:?}");
        // A watcher on a clean link stays on WebRTC; a WebCodecs viewer is always on the socket.
        let mut w = v.clone();
        w.controlling = false;
        let mut c = Controller::new(w, 0);
        c.on_network(net(100, 2.0, 0.0));
        assert!(!c.decide(100).via_socket);
        let mut c = Controller::new(viewer(Transport::WebCodecs, BOTH, true, false), 0);
        assert!(c.decide(0).via_socket);
        let mut v2 = v;
        v2.socket_video = false;
        let mut c = Controller::new(v2, 0);
        c.on_network(net(100, 2.0, 0.0));
        assert!(!c.decide(100).via_socket, "cannot decode socket video");
    }

    fn watcher() -> Viewer {
        viewer(Transport::WebRtc, BOTH, true, false)
    }

    fn controller_viewer() -> Viewer {
        viewer(Transport::WebRtc, BOTH, false, true)
    }

    /// A WebRTC-like report: bandwidth, loss and RTT.
    fn report(at_ms: u64, bandwidth_bps: u64, loss: f64) -> NetSample {
        NetSample {
            at_ms,
            rtt_ms: Some(20.0),
            loss: Some(loss),
            bandwidth_bps: Some(bandwidth_bps),
            backlog_frames: None,
            backlog_bytes: None,
        }
    }

    /// (mode, tier) as a short label, for readable assertions.
    fn label(d: &Decision) -> String {
        match d.tier {
            Some(tier) => format!("{:?}/{tier:?}", d.mode),
            None => format!("{:?}", d.mode),
        }
    }

    /// Drives a controller faster than real time: a report every `step_ms`, a decision after each.
    struct Sim {
        c: Controller,
        now: u64,
        log: Vec<(u64, Decision)>,
    }

    impl Sim {
        fn new(viewer: Viewer) -> Sim {
            let mut c = Controller::new(viewer, 0);
            let first = c.decide(0);
            Sim {
                c,
                now: 0,
                log: vec![(0, first)],
            }
        }

        /// Runs for `duration_ms`; returns the decisions of this run, after the one before it.
        fn run(
            &mut self,
            duration_ms: u64,
            step_ms: u64,
            sample: impl Fn(u64) -> NetSample,
        ) -> &[(u64, Decision)] {
            let start = self.log.len();
            let end = self.now + duration_ms;
            while self.now < end {
                self.now += step_ms;
                self.c.on_network(sample(self.now));
                let d = self.c.decide(self.now);
                self.log.push((self.now, d));
            }
            &self.log[start - 1..]
        }

        fn last(&self) -> &Decision {
            &self.log.last().expect("decided").1
        }

        fn decide(&mut self) -> Decision {
            let d = self.c.decide(self.now);
            self.log.push((self.now, d.clone()));
            d
        }
    }

    /// (time, level) where the level differs from the entry before; the first entry is the reference.
    fn transitions(log: &[(u64, Decision)]) -> Vec<(u64, String)> {
        log.windows(2)
            .filter(|w| label(&w[0].1) != label(&w[1].1))
            .map(|w| (w[1].0, label(&w[1].1)))
            .collect()
    }

    /// Invariants every decision keeps.
    fn check_invariants(log: &[(u64, Decision)]) {
        for (i, (at, d)) in log.iter().enumerate() {
            match d.mode {
                Mode::Video => {
                    let tier = d.tier.expect("video has a tier");
                    assert!(d.codec.is_some(), "at {at}: video without codec");
                    assert_eq!(
                        (d.fps, d.bitrate_bps),
                        (tier.fps(), tier.bitrate_bps()),
                        "at {at}"
                    );
                }
                Mode::Stills => {
                    assert_eq!((d.tier, d.codec, d.fps), (None, None, STILLS_FPS), "at {at}");
                }
                Mode::Command => {
                    assert_eq!((d.tier, d.codec, d.fps), (None, None, COMMAND_FPS), "at {at}");
                    assert!(!d.keyframe, "at {at}: keyframe in command view");
                }
            }
            if let Some((_, p)) = i.checked_sub(1).map(|j| &log[j]) {
                let new_stream =
                    d.mode != Mode::Command && (p.mode != d.mode || p.tier != d.tier || p.codec != d.codec);
                assert!(
                    !new_stream || d.keyframe,
                    "at {at}: new stream {} without keyframe",
                    label(d)
                );
            }
        }
    }

    #[test]
    fn tier_table() {
        let table: Vec<(u32, u32)> = Tier::ALL.iter().map(|t| (t.fps(), t.bitrate_bps())).collect();
        assert_eq!(table, [(5, 300_000), (15, 1_000_000), (30, 2_000_000)]);
        assert_eq!(Tier::Low.required_bps(), 375_000);
        assert_eq!(Tier::High.required_bps(), 2_500_000);
    }

    #[test]
    fn bandwidth_drop_and_recovery() {
        // (bandwidth, phase length, level at the end of the phase)
        let phases: &[(u64, u64, &str)] = &[
            (3_000_000, 10_000, "Video/High"),
            (2_000_000, 10_000, "Video/Medium"),
            (600_000, 10_000, "Video/Low"),
            (100_000, 10_000, "Stills"),
            (20_000, 10_000, "Command"),
            (3_000_000, 30_000, "Video/High"),
        ];
        let mut sim = Sim::new(watcher());
        sim.c.on_content(25.0, 0);
        assert_eq!(
            label(sim.last()),
            "Video/Medium",
            "no measurement yet: a watcher starts at Medium"
        );
        for (i, &(bps, duration, expected)) in phases.iter().enumerate() {
            let run = sim.run(duration, 500, |at| report(at, bps, 0.0)).to_vec();
            assert_eq!(label(sim.last()), expected, "phase {i} ({bps} b/s)");
            let changes: Vec<String> = transitions(&run).into_iter().map(|(_, l)| l).collect();
            match i {
                // Recovery climbs one level per hold, never back down.
                5 => assert_eq!(changes, ["Stills", "Video/Low", "Video/Medium", "Video/High"]),
                // Drops take one change (straight to the level that fits).
                1..=4 => assert_eq!(changes.len(), 1, "phase {i}: {changes:?}"),
                _ => {}
            }
        }
        // Recovery: each step waited at least the hold.
        let ups: Vec<u64> = transitions(&sim.log[sim.log.len() - 61..])
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert!(ups.windows(2).all(|w| w[1] - w[0] >= RECOVERY_HOLD_MS), "{ups:?}");
        check_invariants(&sim.log);
    }

    #[test]
    fn loss_burst_steps_down_at_once_and_recovers_after_the_hold() {
        let mut sim = Sim::new(controller_viewer());
        assert_eq!(
            label(sim.last()),
            "Video/High",
            "no measurement yet: the controller starts at High"
        );
        sim.run(10_000, 500, |at| report(at, 5_000_000, 0.0));
        assert_eq!(label(sim.last()), "Video/High");

        // The first lossy report steps down.
        let burst = sim.run(500, 500, |at| report(at, 5_000_000, 0.15))[1].1.clone();
        assert_eq!(label(&burst), "Video/Medium");
        assert!(burst.keyframe);
        assert_eq!(burst.reason, "loss burst");
        // Persisting loss steps down once per cooldown, not below Low.
        sim.run(3_000, 500, |at| report(at, 5_000_000, 0.15));
        assert_eq!(label(sim.last()), "Video/Low");

        // Loss stops: the smoothed loss decays, then the hold runs, then one level per hold.
        let loss_end = sim.now;
        let recovery = sim.run(20_000, 500, |at| report(at, 5_000_000, 0.0)).to_vec();
        let ups: Vec<(u64, String)> = transitions(&recovery)
            .into_iter()
            .map(|(t, l)| (t - loss_end, l))
            .collect();
        assert_eq!(ups.len(), 2, "{ups:?}");
        assert!(ups[0].0 >= RECOVERY_HOLD_MS, "{ups:?}");
        assert!(ups[1].0 - ups[0].0 >= RECOVERY_HOLD_MS, "{ups:?}");
        assert_eq!(
            (ups[0].1.as_str(), ups[1].1.as_str()),
            ("Video/Medium", "Video/High")
        );
        check_invariants(&sim.log);
    }

    #[test]
    fn alternating_samples_do_not_flap() {
        // (name, good sample, bad sample): samples alternate every 500 ms for 60 s.
        type Case = (&'static str, (u64, f64), (u64, f64));
        let cases: &[Case] = &[
            ("loss 12% / 0%", (5_000_000, 0.0), (5_000_000, 0.12)),
            ("bandwidth 3 Mb/s / 1.2 Mb/s", (3_000_000, 0.0), (1_200_000, 0.0)),
            ("bandwidth 800 kb/s / 200 kb/s", (800_000, 0.0), (200_000, 0.0)),
        ];
        for &(name, good, bad) in cases {
            let mut sim = Sim::new(controller_viewer());
            sim.run(10_000, 500, |at| report(at, 5_000_000, 0.0));
            let run = sim
                .run(60_000, 500, |at| {
                    let (bps, loss) = if at % 1_000 == 0 { bad } else { good };
                    report(at, bps, loss)
                })
                .to_vec();
            let levels = transitions(&run);
            assert!(levels.len() <= 3, "{name}: {levels:?}");
            let ranks: Vec<(Mode, Option<Tier>)> = run.iter().map(|(_, d)| (d.mode, d.tier)).collect();
            let rank = |(mode, tier): (Mode, Option<Tier>)| match mode {
                Mode::Command => 0,
                Mode::Stills => 1,
                Mode::Video => 2 + tier.map_or(0, |t| t as u32),
            };
            assert!(
                ranks.windows(2).all(|w| rank(w[1]) <= rank(w[0])),
                "{name}: the level only goes down while samples alternate: {levels:?}"
            );
            check_invariants(&sim.log);
        }
    }

    #[test]
    fn lagging_client_steps_down_with_a_keyframe() {
        let mut sim = Sim::new(viewer(Transport::WebCodecs, BOTH, true, true));
        let healthy = |at| NetSample {
            at_ms: at,
            rtt_ms: Some(30.0),
            backlog_frames: Some(1),
            backlog_bytes: Some(5_000),
            ..NetSample::default()
        };
        sim.run(5_000, 100, healthy);
        assert_eq!(label(sim.last()), "Video/High");
        // The backlog grows by a frame per sample; 3 + 1 in flight (30 fps × 30 ms) are tolerated.
        let start = sim.now;
        let run = sim
            .run(3_000, 100, |at| NetSample {
                backlog_frames: Some(((at - start) / 100) as u32),
                ..healthy(at)
            })
            .to_vec();
        let first_drop = run.iter().find(|(_, d)| d.changed).expect("stepped down");
        assert_eq!(
            first_drop.0 - start,
            500,
            "at the first sample with 5 frames unacknowledged"
        );
        assert_eq!(label(&first_drop.1), "Video/Medium");
        assert!(first_drop.1.keyframe);
        assert_eq!(first_drop.1.reason, "lagging client");
        let steps: Vec<(u64, String)> = transitions(&run)
            .into_iter()
            .map(|(t, l)| (t - start, l))
            .collect();
        assert_eq!(
            steps,
            [(500, "Video/Medium".into()), (1_500, "Video/Low".into()),],
            "one step per cooldown, to Video/Low at most"
        );

        // The driver drops to the newest frame: a keyframe (full still) next, and no climbing meanwhile.
        sim.c.on_backlog_drop(sim.now);
        assert_eq!(sim.c.next_wakeup(sim.now), Some(sim.now));
        let d = sim.decide();
        assert!(d.keyframe && !d.changed);
        assert!(!sim.decide().keyframe, "one keyframe per drop");
        check_invariants(&sim.log);
    }

    #[test]
    fn lagging_websocket_client_on_a_slow_link() {
        // The whole WebCodecs loop: encoder output paced by the decision, an 800 kb/s link with
        // 40 ms RTT, acks into the estimator, samples into the controller. The driver stops sending
        // while 4 frames are unacknowledged and then resumes with a keyframe.
        let capacity_bps = 800_000.0;
        let mut c = Controller::new(viewer(Transport::WebCodecs, BOTH, true, true), 0);
        let mut est = AckEstimator::new();
        let mut link_free_at = 0.0f64;
        let mut acks: VecDeque<(u64, u64)> = VecDeque::new();
        let mut decision = c.decide(0);
        let mut log = vec![(0, decision.clone())];
        let mut want_keyframe = decision.keyframe;
        let mut last_frame_at: Option<u64> = None;
        let mut frame = 0u64;
        let mut dropping = false;
        for now in 1..=20_000u64 {
            while acks.front().is_some_and(|(at, _)| *at <= now) {
                let (at, f) = acks.pop_front().expect("ack");
                est.on_ack(f, at);
            }
            if now % 100 == 0 {
                c.on_network(est.sample(now));
                decision = c.decide(now);
                want_keyframe |= decision.keyframe;
                log.push((now, decision.clone()));
            }
            if decision.mode != Mode::Video {
                continue;
            }
            let interval = 1000 / u64::from(decision.fps);
            if last_frame_at.is_some_and(|t| now < t + interval) {
                continue;
            }
            last_frame_at = Some(now);
            if est.backlog_frames() >= 4 {
                dropping = true;
                continue;
            }
            if dropping {
                dropping = false;
                c.on_backlog_drop(now);
                decision = c.decide(now);
                want_keyframe |= decision.keyframe;
                log.push((now, decision.clone()));
            }
            let per_frame = u64::from(decision.bitrate_bps) / u64::from(decision.fps) / 8;
            let bytes = if want_keyframe { 30_000 } else { per_frame };
            want_keyframe = false;
            frame += 1;
            est.on_send(frame, bytes, now);
            let start = link_free_at.max(now as f64);
            link_free_at = start + bytes as f64 * 8_000.0 / capacity_bps;
            acks.push_back((link_free_at.ceil() as u64 + 40, frame));
        }
        check_invariants(&log);
        let at = |t: u64| {
            log.iter()
                .rev()
                .find(|(at, _)| *at <= t)
                .map(|(_, d)| label(d))
                .expect("decided")
        };
        assert_eq!(at(0), "Video/High");
        // Within a few seconds it sits at the tier the link carries, and stays there for a while.
        assert_eq!(at(3_000), "Video/Low");
        assert!((3_000..10_000).step_by(100).all(|t| at(t) == "Video/Low"));
        assert!(
            log.iter().all(|(_, d)| d.mode == Mode::Video),
            "a controller keeps video"
        );
    }

    #[test]
    fn focus_changes() {
        let unfocused = viewer(Transport::WebRtc, BOTH, false, false);
        let mut sim = Sim::new(unfocused.clone());
        sim.run(2_000, 500, |at| report(at, 5_000_000, 0.0));
        assert_eq!(label(sim.last()), "Command");
        assert_eq!(sim.last().reason, "not watching");
        assert!(!sim.last().keyframe);

        sim.c.set_viewer(watcher(), sim.now);
        let d = sim.decide();
        assert_eq!(
            (d.mode, d.codec, d.keyframe, d.changed),
            (Mode::Video, Some(Codec::H264), true, true)
        );
        assert!(!sim.decide().keyframe);

        sim.c.set_viewer(unfocused, sim.now);
        let d = sim.decide();
        assert_eq!((d.mode, d.keyframe, d.changed), (Mode::Command, false, true));
        check_invariants(&sim.log);
    }

    #[test]
    fn slow_screen_lowers_watchers_not_the_controller() {
        let mut sim = Sim::new(watcher());
        sim.c.on_content(25.0, 0);
        sim.run(10_000, 500, |at| report(at, 5_000_000, 0.0));
        assert_eq!(label(sim.last()), "Video/High");
        // The screen slows down: after the content hold, the watcher drops to Medium.
        sim.c.on_content(0.5, sim.now);
        let slow_since = sim.now;
        assert_eq!(sim.c.next_wakeup(sim.now), Some(slow_since + CONTENT_HOLD_MS));
        sim.run(CONTENT_HOLD_MS - 500, 500, |at| report(at, 5_000_000, 0.0));
        assert_eq!(label(sim.last()), "Video/High");
        sim.run(500, 500, |at| report(at, 5_000_000, 0.0));
        assert_eq!(label(sim.last()), "Video/Medium");
        assert_eq!(sim.last().reason, "slow screen");
        // A human takes over (another operator): watchers share the controller's High stream.
        let mut watching_human = watcher();
        watching_human.human_in_control = true;
        sim.c.set_viewer(watching_human, sim.now);
        assert_eq!(label(&sim.decide()), "Video/High");
        // A busy screen raises at once (the network has been good).
        let mut sim = Sim::new(watcher());
        sim.run(10_000, 500, |at| report(at, 5_000_000, 0.0));
        assert_eq!(label(sim.last()), "Video/Medium");
        sim.c.on_content(20.0, sim.now);
        assert_eq!(label(&sim.decide()), "Video/High");
    }

    #[test]
    fn takeover_and_handback() {
        let mut sim = Sim::new(viewer(Transport::WebRtc, BOTH, false, false));
        sim.c.on_content(0.0, 0);
        assert_eq!(label(sim.last()), "Command");
        // Takeover from the sandbox list (not focused), screen idle, no measurement yet: High video.
        sim.c.set_viewer(controller_viewer(), 10);
        sim.now = 10;
        let d = sim.decide();
        assert_eq!(
            (label(&d).as_str(), d.keyframe, d.reason),
            ("Video/High", true, "controlling")
        );
        sim.run(10_000, 500, |at| report(at, 5_000_000, 0.0));
        assert_eq!(label(sim.last()), "Video/High");
        assert_eq!(sim.log.iter().filter(|(_, d)| d.keyframe).count(), 1);
        // Handback, not focused: the command view.
        sim.c
            .set_viewer(viewer(Transport::WebRtc, BOTH, false, false), sim.now);
        assert_eq!(label(&sim.decide()), "Command");
        check_invariants(&sim.log);
    }

    #[test]
    fn command_only_transport_never_gets_video() {
        // (focused, controlling, bandwidth) → label
        let cases: &[(bool, bool, u64, &str)] = &[
            (false, false, 10_000_000, "Command"),
            (true, false, 10_000_000, "Stills"),
            (false, true, 10_000_000, "Stills"),
            (true, true, 10_000_000, "Stills"),
            (true, false, 100_000, "Stills"),
            (true, true, 20_000, "Command"),
        ];
        for &(focused, controlling, bps, expected) in cases {
            let mut sim = Sim::new(viewer(Transport::CommandOnly, BOTH, focused, controlling));
            sim.c.on_content(30.0, 0);
            sim.run(30_000, 500, |at| report(at, bps, 0.0));
            assert!(sim.log.iter().all(|(_, d)| d.mode != Mode::Video));
            assert_eq!(
                label(sim.last()),
                expected,
                "focused {focused}, controlling {controlling}, {bps} b/s"
            );
            check_invariants(&sim.log);
        }
    }

    #[test]
    fn codec_selection() {
        let cases: &[(&[Codec], Option<Codec>, &str)] = &[
            (&[Codec::Vp8], Some(Codec::Vp8), "Video/High"),
            (&[Codec::H264], Some(Codec::H264), "Video/High"),
            (&[Codec::H264, Codec::Vp8], Some(Codec::H264), "Video/High"),
            (&[Codec::Vp8, Codec::H264], Some(Codec::H264), "Video/High"),
            (&[], None, "Stills"),
        ];
        for &(offered, codec, expected) in cases {
            assert_eq!(choose_codec(offered), codec);
            let mut c = Controller::new(viewer(Transport::WebRtc, offered, true, true), 0);
            let d = c.decide(0);
            assert_eq!((d.codec, label(&d).as_str()), (codec, expected), "{offered:?}");
        }
        // The codec changes (the client reports a broken H.264 decoder): a new stream, a keyframe.
        let mut c = Controller::new(viewer(Transport::WebRtc, BOTH, true, true), 0);
        assert!(c.decide(0).keyframe);
        assert!(!c.decide(100).keyframe);
        c.set_viewer(viewer(Transport::WebRtc, &[Codec::Vp8], true, true), 200);
        let d = c.decide(200);
        assert_eq!((d.codec, d.keyframe, d.changed), (Some(Codec::Vp8), true, true));
    }

    #[test]
    fn keyframe_asks_are_rate_limited_never_lost() {
        let mut c = Controller::new(controller_viewer(), 0);
        assert!(c.decide(0).keyframe, "join");
        assert_eq!(c.next_wakeup(0), None);
        // Asked 100 ms after the join keyframe: held until 500.
        c.on_keyframe_request(100);
        assert!(!c.decide(100).keyframe);
        assert_eq!(c.next_wakeup(100), Some(500));
        c.on_keyframe_request(300);
        assert!(!c.decide(499).keyframe);
        assert!(c.decide(500).keyframe, "both asks answered by one keyframe");
        assert!(!c.decide(600).keyframe);
        assert_eq!(c.next_wakeup(600), None);
        // An ask long after the last keyframe: at once.
        c.on_keyframe_request(2_000);
        assert!(c.decide(2_000).keyframe);
        // An ask followed by a tier change: the new stream's keyframe answers it.
        c.on_keyframe_request(2_100);
        c.on_network(report(2_200, 1_500_000, 0.0));
        let d = c.decide(2_200);
        assert_eq!((d.tier, d.keyframe), (Some(Tier::Medium), true));
        assert!(!c.decide(2_800).keyframe);
        // In the command view, asks are dropped (nothing to refresh).
        c.set_viewer(viewer(Transport::WebRtc, BOTH, false, false), 3_000);
        c.on_keyframe_request(3_000);
        assert!(!c.decide(3_000).keyframe);
        assert_eq!(c.next_wakeup(3_000), None);
    }

    #[test]
    fn keyframe_asks_fuzz() {
        // Asks at pseudo-random times; the driver decides on each ask and at next_wakeup.
        let mut c = Controller::new(controller_viewer(), 0);
        assert!(c.decide(0).keyframe);
        let mut keyframes = vec![0u64];
        let mut asks = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next_ask = 0u64;
        for now in 1..60_000u64 {
            if now == next_ask {
                c.on_keyframe_request(now);
                asks.push(now);
            }
            if (now == next_ask || c.next_wakeup(now) == Some(now)) && c.decide(now).keyframe {
                keyframes.push(now);
            }
            if now >= next_ask {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                next_ask = now + 1 + seed % 900;
            }
        }
        assert!(
            keyframes
                .windows(2)
                .all(|w| w[1] - w[0] >= KEYFRAME_MIN_INTERVAL_MS),
            "{keyframes:?}"
        );
        for ask in asks.iter().filter(|a| **a < 59_000) {
            let answered = keyframes
                .iter()
                .find(|k| **k >= *ask)
                .expect("every ask is answered");
            assert!(
                answered - ask <= KEYFRAME_MIN_INTERVAL_MS,
                "ask at {ask} answered at {answered}"
            );
        }
    }

    #[test]
    fn next_wakeup_covers_the_recovery_hold() {
        let mut c = Controller::new(controller_viewer(), 0);
        c.decide(0);
        c.on_network(report(1_000, 600_000, 0.0));
        assert_eq!(label(&c.decide(1_000)), "Video/Low");
        // The estimate recovers at once; the level waits for the hold, counted from the last bad sample.
        c.on_network(report(1_500, 50_000_000, 0.0));
        assert_eq!(label(&c.decide(1_500)), "Video/Low");
        assert_eq!(c.next_wakeup(1_500), Some(1_000 + RECOVERY_HOLD_MS));
        assert_eq!(label(&c.decide(1_000 + RECOVERY_HOLD_MS - 1)), "Video/Low");
        assert_eq!(label(&c.decide(1_000 + RECOVERY_HOLD_MS)), "Video/Medium");
        assert_eq!(
            c.next_wakeup(1_000 + RECOVERY_HOLD_MS),
            Some(1_000 + 2 * RECOVERY_HOLD_MS)
        );
        // Decided late: the steps happened on time anyway (time-driven, not call-driven).
        assert_eq!(label(&c.decide(60_000)), "Video/High");
        assert_eq!(c.next_wakeup(60_000), None);
    }

    #[test]
    fn stale_values_stop_counting() {
        let mut c = Controller::new(controller_viewer(), 0);
        c.on_network(report(0, 5_000_000, 0.4));
        assert_eq!(
            (label(&c.decide(0)).as_str(), c.decide(0).reason),
            ("Command", "extreme loss")
        );
        // No more reports (no RTP in the command view): the loss goes stale, then recovery climbs.
        assert_eq!(c.next_wakeup(1), Some(STALE_MS));
        assert_eq!(label(&c.decide(STALE_MS)), "Command");
        assert_eq!(label(&c.decide(STALE_MS + RECOVERY_HOLD_MS)), "Stills");
        assert_eq!(label(&c.decide(STALE_MS + 4 * RECOVERY_HOLD_MS)), "Video/High");
    }

    #[test]
    fn ack_estimator_backlog_and_rtt() {
        let mut est = AckEstimator::new();
        for f in 1..=5 {
            est.on_send(f, 1_000, f * 10);
        }
        assert_eq!((est.backlog_frames(), est.backlog_bytes()), (5, 5_000));
        assert_eq!(est.on_ack(2, 70), Some(50.0), "cumulative: acks 1 and 2");
        assert_eq!((est.backlog_frames(), est.backlog_bytes()), (3, 3_000));
        assert_eq!(est.on_ack(2, 80), None, "duplicate");
        assert_eq!(est.on_ack(3, 60), Some(30.0));
        let s = est.sample(100);
        assert_eq!(
            (s.rtt_ms, s.backlog_frames, s.backlog_bytes, s.loss),
            (Some(30.0), Some(2), Some(2_000), None)
        );
        assert_eq!(est.sample(110).rtt_ms, None, "reset by the previous sample");
    }

    /// Sends `frames` (sent time, bytes) over a link of `capacity_bps` with `rtt_ms` (+ `jitter`),
    /// acking into an estimator; returns the estimate at the end.
    fn measure(
        capacity_bps: f64,
        rtt_ms: u64,
        jitter: impl Fn(u64) -> u64,
        frames: &[(u64, u64)],
    ) -> Option<u64> {
        let mut est = AckEstimator::new();
        let mut free_at = 0.0f64;
        let mut events: Vec<(u64, bool, u64, u64)> = Vec::new(); // (time, is_ack, frame, bytes)
        for (i, &(at, bytes)) in frames.iter().enumerate() {
            let frame = i as u64 + 1;
            events.push((at, false, frame, bytes));
            free_at = free_at.max(at as f64) + bytes as f64 * 8_000.0 / capacity_bps;
            events.push((free_at.ceil() as u64 + rtt_ms + jitter(frame), true, frame, 0));
        }
        events.sort_by_key(|e| (e.0, e.1));
        let mut end = 0;
        for (at, is_ack, frame, bytes) in events {
            if is_ack {
                est.on_ack(frame, at);
            } else {
                est.on_send(frame, bytes, at);
            }
            end = at;
        }
        est.sample(end).bandwidth_bps
    }

    #[test]
    fn ack_estimator_throughput() {
        let every = |interval: u64, count: u64, bytes: u64| -> Vec<(u64, u64)> {
            (0..count)
                .map(|i| (i * interval, if i % 30 == 0 { 30_000 } else { bytes }))
                .collect()
        };
        let no_jitter = |_| 0;
        let jitter = |f: u64| (f * 7) % 9;
        // Saturated 500 kb/s link: 30 fps of 2 KB plus keyframes.
        let est = measure(500_000.0, 40, no_jitter, &every(33, 300, 2_000)).expect("busy link is measured");
        assert!((400_000..=600_000).contains(&est), "{est}");
        let est = measure(500_000.0, 40, jitter, &every(33, 300, 2_000)).expect("busy link is measured");
        assert!((400_000..=600_000).contains(&est), "{est}");
        // Fast link, small frames only: the sender's own rate is not the link's. No estimate.
        let small: Vec<(u64, u64)> = (0..300).map(|i| (i * 33, 300)).collect();
        assert_eq!(measure(100_000_000.0, 40, jitter, &small), None);
        // Fast link with a keyframe in the window: far above the top tier.
        let est = measure(100_000_000.0, 40, jitter, &every(33, 31, 300)).expect("keyframe measures");
        assert!(est > 10_000_000, "{est}");
    }

    #[test]
    fn a_few_tiny_frames_acknowledged_late_give_no_bandwidth_estimate() {
        let mut acks = AckEstimator::new();
        // A baseline RTT of 5 ms, then six 200-byte frames 10 ms apart whose acks come 80 ms
        // apart (the page was busy): a long busy time carrying 1.2 KB.
        acks.on_send(1, 200, 0);
        acks.on_ack(1, 5);
        for f in 2..8u64 {
            acks.on_send(f, 200, 100 + f * 10);
        }
        for f in 2..8u64 {
            acks.on_ack(f, 200 + f * 80);
        }
        assert_eq!(acks.throughput_bps(900), None);
    }
}
