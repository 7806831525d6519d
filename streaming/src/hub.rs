//! The per-sandbox streaming hub: the thread that keeps the [`Mirror`] up to date from the guest's
//! frame stream, one shared encoder task per (codec, quality) with subscribers, and the periodic
//! thumbnail for command views.
//!
//! Back-pressure is explicit everywhere: the guest stream's queue drops its oldest items when the
//! mirror falls behind (the mirror sees the gap in sequence numbers and restarts the stream with a
//! full frame); an encoder encodes the newest mirror frame when its pacer allows, never a queue of
//! old ones; encoded units fan out on a bounded broadcast channel, and a subscriber that lags gets
//! [`FeedError::Lagged`] and must resynchronise on a keyframe. Nothing buffers without bound, and
//! nothing a viewer does slows the guest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use airlock_protocol::FrameUpdate;
use bytes::Bytes;
use tokio::sync::{broadcast, watch, Notify};
use tracing::Instrument;

use crate::encode::{new_encoder, EncoderConfig, VideoEncoder};
use crate::mirror::{Damage, Mirror, MirrorError};
use crate::pace::{Pace, Pacer};
use crate::still;
use crate::wire::StillFormat;
use crate::{Codec, Rect};

/// Encoded units buffered per feed before a slow subscriber lags.
const FEED_BACKLOG: usize = 8;
/// An encoder with no subscribers for this long stops.
const ENCODER_IDLE: Duration = Duration::from_secs(5);

/// Where the hub gets frame updates: the guest's damage-region stream.
pub trait FrameSource: Send + 'static {
    /// Starts (or restarts) the stream; its first update must be a full frame with seq 0.
    fn start(&mut self) -> Result<(), SourceError>;
    /// The next update; `Ok(None)` on timeout.
    fn next(&mut self, timeout: Duration) -> Result<Option<FrameUpdate>, SourceError>;
}

/// Why a [`FrameSource`] failed (the hub logs it with its causes and restarts the source).
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Why a still of a screen region could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RegionStillError {
    /// Encoding it failed.
    #[error("cannot make the still")]
    Encode(#[from] crate::still::StillError),
    /// The blocking task that encodes it failed.
    #[error("the still task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// A frame rate and bitrate an encoder runs at; encoders are shared per (codec, quality).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quality {
    /// Frames per second at most.
    pub fps: u32,
    /// Target bitrate.
    pub bitrate_bps: u32,
}

/// Hub settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Thumbnail bounding box.
    pub thumbnail_size: (u16, u16),
    /// How often a changed screen gets a new thumbnail.
    pub thumbnail_every: Duration,
}

impl Default for HubConfig {
    fn default() -> HubConfig {
        HubConfig {
            thumbnail_size: (320, 200),
            thumbnail_every: Duration::from_secs(2),
        }
    }
}

/// A new mirror frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTick {
    /// Mirror frame number.
    pub frame: u64,
    /// Guest capture time (guest monotonic µs).
    pub captured_us: u64,
    /// When the host applied it.
    pub at: Instant,
}

/// One encoded access unit, shared by every subscriber of its feed.
#[derive(Debug)]
pub struct EncodedUnit {
    /// Codec.
    pub codec: Codec,
    /// Whether it is a keyframe.
    pub keyframe: bool,
    /// Picture width.
    pub width: u16,
    /// Picture height.
    pub height: u16,
    /// The mirror frame it shows.
    pub frame: u64,
    /// When the host received that frame (monotonic).
    pub received_at: Instant,
    /// Host wall-clock time of reception, µs since the Unix epoch.
    pub received_unix_us: u64,
    /// Encode time.
    pub encode_us: u32,
    /// The access unit.
    pub data: Bytes,
}

/// A thumbnail for command views and grids.
#[derive(Debug)]
pub struct Thumbnail {
    /// The mirror frame it shows.
    pub frame: u64,
    /// Image bytes.
    pub image: Vec<u8>,
    /// Format.
    pub format: StillFormat,
    /// Screen width.
    pub screen_w: u16,
    /// Screen height.
    pub screen_h: u16,
}

/// A copy of the current frame.
#[derive(Debug, Clone)]
pub struct FrameCopy {
    /// BGRX pixels.
    pub bgrx: Vec<u8>,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Mirror frame number.
    pub frame: u64,
}

/// The current frame number with what changed before it ([`Hub::refine_snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefineSnapshot {
    /// The current frame.
    pub frame: u64,
    /// What changed since the frame the viewer's refinement layer was last told about.
    pub changed: Damage,
    /// What changed since the frame that was current [`crate::refine::REST_MS`] ago.
    pub recent: Damage,
}

/// Why a feed stopped delivering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The subscriber fell behind and missed units: it needs a keyframe to go on.
    #[error("the viewer fell {0} frames behind")]
    Lagged(u64),
    /// The encoder stopped (hub stopped or the encoder failed).
    #[error("the video feed ended")]
    Closed,
}

/// Why the hub could not start a feed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The encoder could not be created.
    #[error(transparent)]
    Encoder(#[from] crate::encode::EncodeError),
    /// The hub is stopped.
    #[error("the stream of this sandbox has stopped")]
    Stopped,
}

struct EncoderSlot {
    tx: broadcast::Sender<Arc<EncodedUnit>>,
    keyframe: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

struct Inner {
    mirror: Mutex<Mirror>,
    ticks: watch::Sender<FrameTick>,
    thumbs: watch::Sender<Option<Arc<Thumbnail>>>,
    encoders: Mutex<HashMap<(Codec, Quality), EncoderSlot>>,
    stopped: AtomicBool,
    /// Frames per second of screen change, EWMA, as f64 bits.
    change_rate: AtomicU64,
    /// Restarts of the guest stream after gaps or errors.
    restarts: AtomicU64,
    width: u16,
    height: u16,
}

/// The per-sandbox streaming hub. Cheap to clone; [`Hub::stop`] ends its tasks.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

fn lock(m: &Mutex<Mirror>) -> MutexGuard<'_, Mirror> {
    // A panic while holding the mirror cannot leave it half-updated (apply validates first), so a
    // poisoned lock is still a consistent mirror.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Hub {
    /// Starts mirroring a `width`x`height` screen from `source`. Must be called within a tokio
    /// runtime (the thumbnail task runs on it); the mirror runs on its own thread.
    pub fn start(
        width: u16,
        height: u16,
        source: Box<dyn FrameSource>,
        config: HubConfig,
        name: &str,
    ) -> Hub {
        let inner = Arc::new(Inner {
            mirror: Mutex::new(Mirror::new(width, height)),
            ticks: watch::channel(FrameTick {
                frame: 0,
                captured_us: 0,
                at: Instant::now(),
            })
            .0,
            thumbs: watch::channel(None).0,
            encoders: Mutex::new(HashMap::new()),
            stopped: AtomicBool::new(false),
            change_rate: AtomicU64::new(0f64.to_bits()),
            restarts: AtomicU64::new(0),
            width,
            height,
        });
        let hub = Hub { inner };
        let h = hub.clone();
        let thread_name = format!("mirror-{name}");
        let span = tracing::info_span!("mirror", sandbox = name);
        let spawned = std::thread::Builder::new().name(thread_name).spawn(move || {
            let _g = span.enter();
            h.mirror_loop(source);
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the mirror thread");
            hub.stop();
        }
        tokio::spawn(hub.clone().thumbnail_loop(config));
        hub
    }

    /// Screen size.
    pub fn size(&self) -> (u16, u16) {
        (self.inner.width, self.inner.height)
    }

    /// Stops the mirror, encoders and thumbnails.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        if let Ok(enc) = self.inner.encoders.lock() {
            for slot in enc.values() {
                slot.wake.notify_one();
            }
        }
    }

    /// Whether the hub is stopped.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Frame notifications.
    pub fn ticks(&self) -> watch::Receiver<FrameTick> {
        self.inner.ticks.subscribe()
    }

    /// Thumbnails, refreshed at most every `thumbnail_every` while the screen changes.
    pub fn thumbnails(&self) -> watch::Receiver<Option<Arc<Thumbnail>>> {
        self.inner.thumbs.subscribe()
    }

    /// Screen changes per second (smoothed).
    pub fn change_rate(&self) -> f64 {
        f64::from_bits(self.inner.change_rate.load(Ordering::Relaxed))
    }

    /// How often the guest stream had to be restarted (gaps, errors).
    pub fn restarts(&self) -> u64 {
        self.inner.restarts.load(Ordering::Relaxed)
    }

    /// The current frame number.
    pub fn frame(&self) -> u64 {
        lock(&self.inner.mirror).frame()
    }

    /// The damage since a frame.
    pub fn damage_since(&self, frame: u64) -> Damage {
        lock(&self.inner.mirror).damage_since(frame)
    }

    /// The current frame's content hash (see [`crate::mirror::frame_hash_rgba`]).
    pub fn frame_hash(&self) -> (u64, [u8; 32]) {
        let mut m = lock(&self.inner.mirror);
        (m.frame(), m.hash())
    }

    /// A copy of the current frame.
    pub fn copy_frame(&self) -> FrameCopy {
        let m = lock(&self.inner.mirror);
        FrameCopy {
            bgrx: m.bgrx().to_vec(),
            width: m.width(),
            height: m.height(),
            frame: m.frame(),
        }
    }

    /// The current frame number and, read with it under one lock, what changed since `since`
    /// (`None`: everything) and since `rested` (`None`: everything) — for refinement
    /// ([`crate::refine`]). No pixels: they are copied only when patches are made.
    pub fn refine_snapshot(&self, since: Option<u64>, rested: Option<u64>) -> RefineSnapshot {
        let m = lock(&self.inner.mirror);
        let damage = |f: Option<u64>| f.map_or(Damage::Full, |f| m.damage_since(f));
        RefineSnapshot {
            frame: m.frame(),
            changed: damage(since),
            recent: damage(rested),
        }
    }

    /// The current frame number and what changed since `since`, read under one lock.
    pub fn damage_report(&self, since: u64) -> (u64, Damage) {
        let m = lock(&self.inner.mirror);
        (m.frame(), m.damage_since(since))
    }

    /// A still of a screen region of the current frame (at most `max` in size), with the region
    /// it covers; computed off the async runtime.
    pub async fn region_still(
        &self,
        rect: Rect,
        max: (u16, u16),
        format: StillFormat,
    ) -> Result<(Vec<u8>, Rect, u64), RegionStillError> {
        let copy = self.copy_frame();
        let frame = copy.frame;
        let (img, r) = tokio::task::spawn_blocking(move || {
            still::region(&copy.bgrx, copy.width, copy.height, rect, max.0, max.1, format)
        })
        .await??;
        Ok((img, r, frame))
    }

    /// Subscribes to the shared encoder for `(codec, quality)`, starting it if needed. The first
    /// unit a new subscriber gets is a keyframe (one is requested on join).
    pub fn subscribe(&self, codec: Codec, quality: Quality) -> Result<VideoFeed, HubError> {
        if self.is_stopped() {
            return Err(HubError::Stopped);
        }
        let mut map = self.inner.encoders.lock().map_err(|_| HubError::Stopped)?;
        let key = (codec, quality);
        if let Some(slot) = map.get(&key) {
            let feed = VideoFeed {
                rx: slot.tx.subscribe(),
                keyframe: slot.keyframe.clone(),
                wake: slot.wake.clone(),
                codec,
                quality,
            };
            feed.request_keyframe();
            return Ok(feed);
        }
        let encoder = new_encoder(&EncoderConfig {
            codec,
            width: self.inner.width,
            height: self.inner.height,
            fps: quality.fps,
            bitrate_bps: quality.bitrate_bps,
        })?;
        let (tx, rx) = broadcast::channel(FEED_BACKLOG);
        let slot = EncoderSlot {
            tx: tx.clone(),
            keyframe: Arc::new(AtomicBool::new(true)),
            wake: Arc::new(Notify::new()),
        };
        let feed = VideoFeed {
            rx,
            keyframe: slot.keyframe.clone(),
            wake: slot.wake.clone(),
            codec,
            quality,
        };
        let span = tracing::debug_span!(
            "encoder",
            codec = codec.name(),
            fps = quality.fps,
            kbps = quality.bitrate_bps / 1000
        );
        tokio::spawn(
            self.clone()
                .encoder_loop(key, encoder, tx, slot.keyframe.clone(), slot.wake.clone())
                .instrument(span),
        );
        map.insert(key, slot);
        Ok(feed)
    }

    /// Number of running encoders (for tests and stats).
    pub fn encoder_count(&self) -> usize {
        self.inner.encoders.lock().map(|m| m.len()).unwrap_or(0)
    }

    fn mirror_loop(&self, mut source: Box<dyn FrameSource>) {
        let mut backoff = Duration::from_millis(50);
        let mut last_change: Option<Instant> = None;
        'outer: while !self.is_stopped() {
            if let Err(e) = source.start() {
                tracing::warn!(error = %airlock_protocol::error_chain(&*e), "cannot start the guest frame stream; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
            lock(&self.inner.mirror).restart();
            loop {
                if self.is_stopped() {
                    break 'outer;
                }
                let update = match source.next(Duration::from_millis(200)) {
                    Ok(Some(u)) => u,
                    Ok(None) => {
                        self.decay_rate(last_change);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %airlock_protocol::error_chain(&*e), "the guest frame stream failed; restarting it");
                        self.inner.restarts.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue 'outer;
                    }
                };
                let applied = lock(&self.inner.mirror).apply(&update);
                match applied {
                    Ok(a) if a.rects.is_empty() => {}
                    Ok(a) => {
                        backoff = Duration::from_millis(50);
                        let now = Instant::now();
                        if let Some(prev) = last_change {
                            let dt = now.duration_since(prev).as_secs_f64().max(1e-3);
                            let old = self.change_rate();
                            let rate = 0.8 * old + 0.2 * (1.0 / dt);
                            self.inner.change_rate.store(rate.to_bits(), Ordering::Relaxed);
                        }
                        last_change = Some(now);
                        let _ = self.inner.ticks.send(FrameTick {
                            frame: a.frame,
                            captured_us: a.captured_us,
                            at: now,
                        });
                    }
                    Err(MirrorError::Gap { expected, got }) => {
                        tracing::debug!(expected, got, "frame stream gap; restarting it for a full frame");
                        self.inner.restarts.fetch_add(1, Ordering::Relaxed);
                        continue 'outer;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the guest sent a bad frame update; restarting the stream");
                        self.inner.restarts.fetch_add(1, Ordering::Relaxed);
                        continue 'outer;
                    }
                }
            }
        }
        tracing::debug!("mirror stopped");
    }

    fn decay_rate(&self, last_change: Option<Instant>) {
        let Some(prev) = last_change else { return };
        let idle = prev.elapsed().as_secs_f64();
        // With no changes, the rate decays towards 1/idle.
        let rate = self.change_rate().min(1.0 / idle.max(1e-3));
        self.inner.change_rate.store(rate.to_bits(), Ordering::Relaxed);
    }

    async fn encoder_loop(
        self,
        key: (Codec, Quality),
        encoder: Box<dyn VideoEncoder>,
        tx: broadcast::Sender<Arc<EncodedUnit>>,
        keyframe: Arc<AtomicBool>,
        wake: Arc<Notify>,
    ) {
        let (codec, quality) = key;
        let mut ticks = self.ticks();
        let mut pacer = Pacer::new(quality.fps);
        let t0 = Instant::now();
        let now_ms = |t0: Instant| t0.elapsed().as_millis() as u64;
        let mut encoded_frame = u64::MAX;
        let mut encoder = Some(encoder);
        let mut scratch: Vec<u8> = Vec::new();
        let mut idle_since: Option<Instant> = None;
        loop {
            if self.is_stopped() {
                break;
            }
            if tx.receiver_count() == 0 {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= ENCODER_IDLE {
                    // Remove the slot only if nobody subscribed in the meantime.
                    if let Ok(mut map) = self.inner.encoders.lock() {
                        if tx.receiver_count() == 0 {
                            map.remove(&key);
                            break;
                        }
                    }
                }
            } else {
                idle_since = None;
            }
            let current = ticks.borrow_and_update().frame;
            let dirty = current != encoded_frame && current != 0;
            let want_key = keyframe.load(Ordering::SeqCst) && current != 0;
            match pacer.poll(now_ms(t0), dirty, want_key) {
                Pace::EncodeNow => {}
                Pace::WaitUntil(t) => {
                    let wait = Duration::from_millis(t.saturating_sub(now_ms(t0)));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = wake.notified() => {}
                    }
                    continue;
                }
                Pace::Idle => {
                    tokio::select! {
                        r = ticks.changed() => if r.is_err() { break },
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            }
            let force = keyframe.swap(false, Ordering::SeqCst);
            let Some(mut enc) = encoder.take() else { break };
            let hub = self.clone();
            let mut buf = std::mem::take(&mut scratch);
            let job = tokio::task::spawn_blocking(move || {
                let (frame, w, h) = {
                    let m = lock(&hub.inner.mirror);
                    buf.clear();
                    buf.extend_from_slice(m.bgrx());
                    (m.frame(), m.width(), m.height())
                };
                let received_at = Instant::now();
                let received_unix_us = unix_us();
                let started = Instant::now();
                let out = enc.encode(&buf, force);
                let encode_us = started.elapsed().as_micros() as u32;
                (
                    enc,
                    buf,
                    out,
                    frame,
                    w,
                    h,
                    received_at,
                    received_unix_us,
                    encode_us,
                )
            })
            .await;
            let Ok((enc, buf, out, frame, width, height, received_at, received_unix_us, encode_us)) = job
            else {
                tracing::error!("an encode task panicked; stopping this encoder");
                break;
            };
            encoder = Some(enc);
            scratch = buf;
            pacer.encoded(now_ms(t0));
            encoded_frame = frame;
            match out {
                Ok(Some(unit)) => {
                    let _ = tx.send(Arc::new(EncodedUnit {
                        codec,
                        keyframe: unit.keyframe,
                        width,
                        height,
                        frame,
                        received_at,
                        received_unix_us,
                        encode_us,
                        data: Bytes::from(unit.data),
                    }));
                }
                Ok(None) => {
                    if force {
                        keyframe.store(true, Ordering::SeqCst);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "encoding failed; stopping this encoder");
                    break;
                }
            }
        }
        if let Ok(mut map) = self.inner.encoders.lock() {
            if map.get(&key).is_some_and(|s| s.tx.same_channel(&tx)) {
                map.remove(&key);
            }
        }
    }

    async fn thumbnail_loop(self, config: HubConfig) {
        let mut ticks = self.ticks();
        let mut last = 0u64;
        loop {
            if self.is_stopped() {
                break;
            }
            let frame = ticks.borrow_and_update().frame;
            if frame != 0 && frame != last {
                let copy = self.copy_frame();
                let (tw, th) = config.thumbnail_size;
                let made = tokio::task::spawn_blocking(move || {
                    still::thumbnail(&copy.bgrx, copy.width, copy.height, tw, th, StillFormat::Webp)
                        .map(|img| (img, copy))
                })
                .await;
                match made {
                    Ok(Ok((image, copy))) => {
                        last = copy.frame;
                        let _ = self.inner.thumbs.send(Some(Arc::new(Thumbnail {
                            frame: copy.frame,
                            image,
                            format: StillFormat::Webp,
                            screen_w: copy.width,
                            screen_h: copy.height,
                        })));
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot make a thumbnail"),
                    Err(e) => tracing::warn!(error = %e, "the thumbnail task failed"),
                }
                tokio::time::sleep(config.thumbnail_every).await;
                continue;
            }
            tokio::select! {
                r = ticks.changed() => if r.is_err() { break },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// A subscription to one shared encoder.
pub struct VideoFeed {
    rx: broadcast::Receiver<Arc<EncodedUnit>>,
    keyframe: Arc<AtomicBool>,
    wake: Arc<Notify>,
    codec: Codec,
    quality: Quality,
}

impl VideoFeed {
    /// The next unit.
    pub async fn recv(&mut self) -> Result<Arc<EncodedUnit>, FeedError> {
        match self.rx.recv().await {
            Ok(u) => Ok(u),
            Err(broadcast::error::RecvError::Lagged(n)) => Err(FeedError::Lagged(n)),
            Err(broadcast::error::RecvError::Closed) => Err(FeedError::Closed),
        }
    }

    /// Asks the encoder for a keyframe (shared: every subscriber gets it).
    pub fn request_keyframe(&self) {
        self.keyframe.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// The feed's codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The feed's quality.
    pub fn quality(&self) -> Quality {
        self.quality
    }
}

/// The bounding rectangle of some damage, the whole screen for [`Damage::Full`].
pub fn damage_bounds(d: &Damage, width: u16, height: u16) -> Option<Rect> {
    match d {
        Damage::None => None,
        Damage::Full => Some(Rect::screen(width, height)),
        Damage::Rects(rs) => rs.iter().copied().reduce(Rect::union),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use airlock_protocol::Pixels;

    use super::*;

    /// A scripted guest: updates come from a channel; `start` counts restarts and begins a new
    /// stream (the next update sent must be a full frame with seq 0).
    struct FakeSource {
        rx: mpsc::Receiver<FrameUpdate>,
        starts: Arc<AtomicU64>,
    }

    impl FrameSource for FakeSource {
        fn start(&mut self) -> Result<(), SourceError> {
            self.starts.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }

        fn next(&mut self, timeout: Duration) -> Result<Option<FrameUpdate>, SourceError> {
            match self.rx.recv_timeout(timeout) {
                Ok(u) => Ok(Some(u)),
                Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
                Err(mpsc::RecvTimeoutError::Disconnected) => Err("the fake guest went away".into()),
            }
        }
    }

    const W: u16 = 320;
    const H: u16 = 200;

    fn full(seq: u64, shade: u8) -> FrameUpdate {
        let px = vec![shade; W as usize * H as usize * 4];
        FrameUpdate {
            seq,
            screen_w: W,
            screen_h: H,
            captured_us: seq * 1000,
            regions: vec![Pixels::compress(0, 0, W, H, &px)],
        }
    }

    fn patch(seq: u64, x: u16, shade: u8) -> FrameUpdate {
        let px = vec![shade; 16 * 16 * 4];
        FrameUpdate {
            seq,
            screen_w: W,
            screen_h: H,
            captured_us: seq * 1000,
            regions: vec![Pixels::compress(x, 10, 16, 16, &px)],
        }
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mirror_encoders_and_thumbnails_follow_the_guest() {
        let (tx, rx) = mpsc::channel();
        let starts = Arc::new(AtomicU64::new(0));
        let hub = Hub::start(
            W,
            H,
            Box::new(FakeSource {
                rx,
                starts: starts.clone(),
            }),
            HubConfig {
                thumbnail_size: (80, 50),
                thumbnail_every: Duration::from_millis(50),
            },
            "test",
        );
        tx.send(full(0, 40)).unwrap();
        until("the first frame", || hub.frame() == 1).await;

        // A subscriber's first unit is a keyframe of the current frame.
        let quality = Quality {
            fps: 30,
            bitrate_bps: 500_000,
        };
        let mut feed = hub.subscribe(Codec::H264, quality).unwrap();
        let first = tokio::time::timeout(Duration::from_secs(10), feed.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(first.keyframe);
        assert_eq!((first.width, first.height, first.frame), (W, H, 1));
        // A second subscriber at the same quality shares the encoder.
        let _second = hub.subscribe(Codec::H264, quality).unwrap();
        assert_eq!(hub.encoder_count(), 1);

        // A change is encoded as a delta of the new frame.
        tx.send(patch(1, 100, 250)).unwrap();
        let unit = loop {
            let u = tokio::time::timeout(Duration::from_secs(10), feed.recv())
                .await
                .unwrap()
                .unwrap();
            if u.frame == 2 {
                break u;
            }
        };
        assert_eq!(unit.codec, Codec::H264);
        assert!(hub.damage_since(1) != Damage::None);

        // A gap in sequence numbers is never applied: the stream restarts and needs a full frame.
        let restarts = hub.restarts();
        tx.send(patch(5, 0, 200)).unwrap();
        until("the restart", || hub.restarts() > restarts).await;
        assert_eq!(hub.frame(), 2, "the gapped update was not applied");
        tx.send(patch(0, 0, 200)).unwrap(); // not a full frame: refused again
        tx.send(full(0, 90)).unwrap();
        until("the full frame after the restart", || hub.frame() == 3).await;
        assert!(starts.load(Ordering::SeqCst) >= 2);

        // Thumbnails follow the screen.
        let thumbs = hub.thumbnails();
        until("a thumbnail of the new frame", || {
            thumbs.borrow().as_ref().is_some_and(|t| t.frame == 3)
        })
        .await;

        // The hash is the mirror's content hash.
        let (frame, hash) = hub.frame_hash();
        assert_eq!(frame, 3);
        let copy = hub.copy_frame();
        assert_eq!(hash, crate::mirror::frame_hash_bgrx(W, H, &copy.bgrx));
        hub.stop();
        assert!(hub.subscribe(Codec::H264, quality).is_err());
    }
}
