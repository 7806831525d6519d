//! The WebRTC transport (webrtc-rs 0.21): one peer connection per browser viewer, carrying a
//! send-only video track and the viewer's `input` data channel.
//!
//! Signalling is one round: the browser's complete offer (non-trickle) in, the complete answer out.
//! The recipe and pitfalls measured on this machine (`../shared/feasibility/streaming/REPORT.md`):
//! mDNS is off (a loopback-only namespace has no multicast device); RTCP for our track (PLI, FIR,
//! receiver reports, REMB) is handed to the application by an interceptor, and a PLI or FIR becomes
//! a [`RtcEvent::KeyframeRequest`]; no RTP header extensions are written with samples (they broke
//! decoding); no congestion-control pacer (it delayed large scroll frames by hundreds of ms) — the
//! bandwidth estimate comes from Chromium's REMB (`goog-remb` is negotiated) and receiver reports,
//! and rate adaptation is done by choosing a tier (fewer frames, never fewer pixels).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{configure_nack, configure_rtcp_reports};
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_H264, MIME_TYPE_VP8};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtp::packetizer::{new_packetizer, Packetizer};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::sansio::Protocol;
use tokio::sync::{mpsc, Notify};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};

use crate::Codec;

/// Largest offer accepted.
pub const MAX_SDP: usize = 64 * 1024;
/// Longest wait for ICE gathering before answering.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// Events buffered per peer before the oldest non-essential ones are dropped.
const EVENT_QUEUE: usize = 256;
/// Largest input message accepted from the data channel.
const MAX_DC_MESSAGE: usize = 1024;

/// Why a peer connection could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum RtcError {
    /// The offer is not usable.
    #[error("the WebRTC offer is invalid: {0}")]
    Offer(String),
    /// The WebRTC stack refused an operation.
    #[error("WebRTC {what} failed: {message}")]
    Stack {
        /// The operation.
        what: &'static str,
        /// The stack's message.
        message: String,
    },
    /// ICE gathering did not finish.
    #[error("ICE gathering did not finish within {0:?}")]
    GatherTimeout(Duration),
    /// Writing media failed.
    #[error("cannot send video: {0}")]
    Write(String),
}

fn stack(what: &'static str) -> impl FnOnce(rtc::shared::error::Error) -> RtcError {
    move |e| RtcError::Stack {
        what,
        message: e.to_string(),
    }
}

/// What a peer reports to the viewer task that owns it.
#[derive(Debug, Clone, PartialEq)]
pub enum RtcEvent {
    /// ICE and DTLS are up: media can flow.
    Connected,
    /// The connection failed or closed.
    Closed(String),
    /// The browser asked for a keyframe (PLI or FIR).
    KeyframeRequest,
    /// A receiver report: fraction of packets lost (0..1) and interarrival jitter (RTP units).
    ReceiverReport {
        /// Loss fraction since the previous report.
        loss: f64,
        /// Interarrival jitter.
        jitter: u32,
    },
    /// The browser's receive-side bandwidth estimate (REMB), bits per second.
    Remb(u64),
    /// The input data channel opened.
    InputOpen,
    /// A binary message on the input data channel.
    Input(Bytes),
    /// A message the data channel refused (too large, text), with the reason.
    BadInput(String),
}

/// Hands RTCP about our track (PLI, FIR, receiver reports, REMB) to the application.
struct RtcpTap {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(pkts) = &msg.message.packet {
            let wanted = pkts.iter().any(|p| {
                let a = p.as_any();
                a.is::<PictureLossIndication>()
                    || a.is::<FullIntraRequest>()
                    || a.is::<ReceiverReport>()
                    || a.is::<ReceiverEstimatedMaximumBitrate>()
            });
            if wanted {
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for RtcpTap {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

struct Handler {
    gathered: Notify,
    events: mpsc::Sender<RtcEvent>,
    peer: String,
}

impl Handler {
    fn emit(&self, ev: RtcEvent) {
        if self.events.try_send(ev).is_err() {
            tracing::debug!(peer = %self.peer, "a WebRTC event was dropped: the viewer is not reading");
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, s: RTCIceGatheringState) {
        if s == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }

    async fn on_connection_state_change(&self, s: RTCPeerConnectionState) {
        tracing::debug!(peer = %self.peer, state = %s, "peer connection state");
        match s {
            RTCPeerConnectionState::Connected => self.emit(RtcEvent::Connected),
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                self.emit(RtcEvent::Closed(format!("the peer connection is {s}")))
            }
            RTCPeerConnectionState::Disconnected => {
                self.emit(RtcEvent::Closed("the peer connection was lost".into()))
            }
            // The enum is non-exhaustive: new and intermediate states need no action.
            _ => {}
        }
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        let events = self.events.clone();
        let peer = self.peer.clone();
        tokio::spawn(async move {
            let label = dc.label().await.unwrap_or_default();
            if label != "input" {
                tracing::debug!(%peer, %label, "ignoring a data channel that is not `input`");
                return;
            }
            while let Some(ev) = dc.poll().await {
                let out = match ev {
                    DataChannelEvent::OnOpen => RtcEvent::InputOpen,
                    DataChannelEvent::OnMessage(m) => {
                        if m.is_string {
                            RtcEvent::BadInput("input messages are binary; a text message was sent".into())
                        } else if m.data.len() > MAX_DC_MESSAGE {
                            RtcEvent::BadInput(format!(
                                "an input message is {} bytes, over the {MAX_DC_MESSAGE}-byte limit",
                                m.data.len()
                            ))
                        } else {
                            RtcEvent::Input(m.data.freeze())
                        }
                    }
                    DataChannelEvent::OnClose => break,
                    _ => continue,
                };
                // Input must not be lost while the viewer keeps up; if it does not, back-pressure
                // the data channel rather than drop keys (a dropped key-up would leave a key held).
                if events.send(out).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Where peers bind their UDP sockets.
#[derive(Debug, Clone, Copy)]
pub struct RtcConfig {
    /// Local address for ICE host candidates (port 0: any).
    pub udp_addr: SocketAddr,
}

/// Largest RTP packet this peer sends (what webrtc-rs's sample track uses).
const RTP_MTU: usize = 1200;

/// RTP timestamps for frames sent when the screen changed, at irregular times.
///
/// A frame's RTP timestamp must say when it was captured, relative to the others: receivers
/// estimate network jitter from the difference between frames' arrival gaps and their timestamp
/// gaps, and hold frames back by that much. webrtc-rs's sample track advances the timestamp by a
/// sample's `duration` *after* sending it, so a frame got the previous gap — on a screen that
/// changes at irregular times every frame looked late or early by the difference of two gaps, and
/// Chromium's jitter buffer grew to hundreds of milliseconds (measured: key → pixels p95 238 ms).
/// Here the timestamp moves before each frame by the time since the previous one, rounded without
/// drift (the offset from the first frame is rounded, not each gap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpClock {
    clock_rate: u32,
    first: Option<Instant>,
    /// Ticks from the first frame to the last one sent.
    sent_ticks: u64,
}

impl RtpClock {
    /// A clock of `clock_rate` ticks per second (90 kHz for video).
    pub fn new(clock_rate: u32) -> RtpClock {
        RtpClock {
            clock_rate,
            first: None,
            sent_ticks: 0,
        }
    }

    /// Ticks to advance the timestamp by before sending a frame captured `at`: 0 for the first
    /// frame, at least 1 for every later one (two frames must never share a timestamp, which
    /// receivers use to tell frames apart, even when one was stamped no later than the previous).
    pub fn advance(&mut self, at: Instant) -> u32 {
        let Some(first) = self.first else {
            self.first = Some(at);
            return 0;
        };
        let elapsed = at.saturating_duration_since(first);
        let ticks = (elapsed.as_micros() * u128::from(self.clock_rate) / 1_000_000) as u64;
        let gap = ticks.saturating_sub(self.sent_ticks).max(1);
        self.sent_ticks += gap;
        // A gap beyond u32 is more than 13 hours at 90 kHz: RTP timestamps wrap anyway.
        gap as u32
    }
}

/// One browser viewer's peer connection.
pub struct RtcPeer {
    pc: Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn webrtc::rtp_transceiver::RtpSender>,
    codec: Codec,
    /// Splits access units into RTP packets (payload type set per packet once negotiated).
    packetizer: Box<dyn Packetizer>,
    clock: RtpClock,
    payload_type: Option<u8>,
    events: mpsc::Receiver<RtcEvent>,
}

fn codec_parameters(codec: Codec) -> RTCRtpCodecParameters {
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    let rtcp_feedback = vec![
        feedback("goog-remb", ""),
        feedback("ccm", "fir"),
        feedback("nack", ""),
        feedback("nack", "pli"),
    ];
    match codec {
        Codec::H264 => RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_H264.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                    .to_owned(),
                rtcp_feedback,
            },
            payload_type: 102,
        },
        Codec::Vp8 => RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback,
            },
            payload_type: 96,
        },
    }
}

impl RtcPeer {
    /// Answers a browser's complete offer with a peer sending `codec`. Returns the peer and the
    /// complete answer SDP (ICE candidates included).
    pub async fn answer(
        offer_sdp: &str,
        codec: Codec,
        config: RtcConfig,
    ) -> Result<(RtcPeer, String), RtcError> {
        if offer_sdp.is_empty() || offer_sdp.len() > MAX_SDP {
            return Err(RtcError::Offer(format!(
                "an offer must be 1 to {MAX_SDP} bytes, this one is {}",
                offer_sdp.len()
            )));
        }
        if !offer_sdp.starts_with("v=0") {
            return Err(RtcError::Offer("an SDP offer starts with `v=0`".into()));
        }
        if !offer_sdp.contains("m=video") {
            return Err(RtcError::Offer("the offer has no video section (m=video)".into()));
        }
        let offer =
            RTCSessionDescription::offer(offer_sdp.to_owned()).map_err(|e| RtcError::Offer(e.to_string()))?;
        let params = codec_parameters(codec);
        let mut me = MediaEngine::default();
        me.register_codec(params.clone(), RtpCodecKind::Video)
            .map_err(stack("codec registration"))?;
        let registry = configure_rtcp_reports(configure_nack(Registry::new(), &mut me));
        let registry = registry.with(
            Slot::from(14_000),
            RtcpTap {
                read: VecDeque::new(),
                write: VecDeque::new(),
            },
        );
        let (tx, events) = mpsc::channel(EVENT_QUEUE);
        let peer_name = format!("{:08x}", rand_u32());
        let handler = Arc::new(Handler {
            gathered: Notify::new(),
            events: tx.clone(),
            peer: peer_name,
        });
        let settings = SettingEngineBuilder::new()
            .with_include_loopback_candidate(config.udp_addr.ip().is_loopback())
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(me)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .with_handler(handler.clone())
            .with_udp_addrs(vec![config.udp_addr])
            .build()
            .await
            .map_err(stack("peer connection setup"))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let ssrc = rand_u32() | 1;
        let payloader = params.rtp_codec.payloader().map_err(stack("payloader setup"))?;
        let packetizer: Box<dyn Packetizer> = Box::new(new_packetizer(
            Instant::now(),
            RTP_MTU,
            0, // set per packet once the negotiated payload type is known
            ssrc,
            payloader,
            Box::new(rtc::rtp::sequence::new_random_sequencer()),
            params.rtp_codec.clock_rate,
        ));
        let clock = RtpClock::new(params.rtp_codec.clock_rate);
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "airlock-screen".to_owned(),
            "screen".to_owned(),
            "screen".to_owned(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: params.rtp_codec.clone(),
                ..Default::default()
            }],
        )));
        let result = async {
            let sender = pc
                .add_track(track.clone() as Arc<dyn TrackLocal>)
                .await
                .map_err(stack("add track"))?;
            pc.set_remote_description(offer)
                .await
                .map_err(|e| RtcError::Offer(e.to_string()))?;
            let answer = pc
                .create_answer(None)
                .await
                .map_err(|e| RtcError::Offer(format!("no answer is possible: {e}")))?;
            let gathered = handler.gathered.notified();
            pc.set_local_description(answer)
                .await
                .map_err(stack("set local description"))?;
            if tokio::time::timeout(GATHER_TIMEOUT, gathered).await.is_err() {
                return Err(RtcError::GatherTimeout(GATHER_TIMEOUT));
            }
            let local = pc.local_description().await.ok_or(RtcError::Stack {
                what: "answer",
                message: "no local description after gathering".into(),
            })?;
            Ok((sender, local.sdp))
        }
        .await;
        let (sender, sdp) = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };
        RtcPeer::start_feedback(track.clone(), tx);
        Ok((
            RtcPeer {
                pc,
                track,
                sender,
                codec,
                packetizer,
                clock,
                payload_type: None,
                events,
            },
            sdp,
        ))
    }

    /// Forwards RTCP feedback about the track as events.
    fn start_feedback(track: Arc<TrackLocalStaticRTP>, events: mpsc::Sender<RtcEvent>) {
        tokio::spawn(async move {
            while let Some(ev) = track.poll().await {
                let TrackLocalEvent::OnRtcpPacket(pkts) = ev else {
                    continue;
                };
                for p in pkts {
                    let a = p.as_any();
                    let ev = if a.is::<PictureLossIndication>() || a.is::<FullIntraRequest>() {
                        RtcEvent::KeyframeRequest
                    } else if let Some(rr) = a.downcast_ref::<ReceiverReport>() {
                        let Some(r) = rr.reports.first() else { continue };
                        RtcEvent::ReceiverReport {
                            loss: r.fraction_lost as f64 / 256.0,
                            jitter: r.jitter,
                        }
                    } else if let Some(remb) = a.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                        RtcEvent::Remb(remb.bitrate as u64)
                    } else {
                        continue;
                    };
                    if events.try_send(ev).is_err() && events.is_closed() {
                        return;
                    }
                }
            }
        });
    }

    /// The next event; `None` once the peer is gone.
    pub async fn next_event(&mut self) -> Option<RtcEvent> {
        self.events.recv().await
    }

    /// The codec this peer sends.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Sends one encoded access unit, stamped `at` (the capture time on the host's monotonic clock).
    pub async fn write(&mut self, data: Bytes, at: Instant) -> Result<(), RtcError> {
        let pt = match self.payload_type {
            Some(pt) => pt,
            None => {
                let params = self
                    .sender
                    .get_parameters()
                    .await
                    .map_err(|e| RtcError::Write(format!("no negotiated parameters: {e}")))?;
                let pt = params
                    .rtp_parameters
                    .codecs
                    .first()
                    .map(|c| c.payload_type)
                    .ok_or_else(|| RtcError::Write("the browser accepted no video codec".into()))?;
                self.payload_type = Some(pt);
                pt
            }
        };
        // The timestamp moves before the frame (see `RtpClock`); the packetizer adds nothing after.
        self.packetizer.skip_samples(self.clock.advance(at));
        let packets = self
            .packetizer
            .packetize(at, &data, 0)
            .map_err(|e| RtcError::Write(format!("cannot packetize the frame: {e}")))?;
        for mut packet in packets {
            packet.header.payload_type = pt;
            self.track
                .write_rtp(packet)
                .await
                .map_err(|e| RtcError::Write(e.to_string()))?;
        }
        Ok(())
    }

    /// Closes the connection.
    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

impl Drop for RtcPeer {
    fn drop(&mut self) {
        let pc = self.pc.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// A random u32 for SSRCs and names (not security-relevant).
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_frame_is_stamped_with_its_own_capture_time_not_the_previous_gap() {
        let t0 = Instant::now();
        let mut clock = RtpClock::new(90_000);
        // Frames at 0, 150, 400 and 410 ms: the timestamp moves by each frame's own gap, before it.
        assert_eq!(clock.advance(t0), 0);
        assert_eq!(clock.advance(t0 + Duration::from_millis(150)), 13_500);
        assert_eq!(clock.advance(t0 + Duration::from_millis(400)), 22_500);
        assert_eq!(clock.advance(t0 + Duration::from_millis(410)), 900);
    }

    #[test]
    fn rounding_does_not_drift_over_many_frames() {
        let t0 = Instant::now();
        let mut clock = RtpClock::new(90_000);
        clock.advance(t0);
        // 33.333 ms gaps give 2999 or 3000 ticks; a thousand of them add up to exactly 33.333 s.
        let total: u64 = (1..=1000u64)
            .map(|i| u64::from(clock.advance(t0 + Duration::from_micros(i * 33_333))))
            .sum();
        assert_eq!(total, 33_333 * 90_000 / 1000);
    }

    #[test]
    fn a_frame_stamped_no_later_than_the_previous_one_still_gets_a_timestamp_of_its_own() {
        let t0 = Instant::now();
        let mut clock = RtpClock::new(90_000);
        clock.advance(t0 + Duration::from_millis(100));
        assert_eq!(clock.advance(t0), 1, "earlier: one tick on, never back");
        assert_eq!(
            clock.advance(t0 + Duration::from_millis(100)),
            1,
            "the same instant: one tick on"
        );
        // 10 ms after the first frame is 900 ticks after it, 2 of which were already spent.
        assert_eq!(clock.advance(t0 + Duration::from_millis(110)), 898);
    }
}
