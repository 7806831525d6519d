//! Video encoders for screen streams: H.264 (openh264, primary) and VP8 (libvpx, fallback).
//!
//! Both take BGRX frames as the X server hands them out, convert them to I420 with
//! [`bgrx_to_i420`] into a buffer kept between frames, and return one access unit per frame:
//!
//! ```no_run
//! use airlock_streaming::encode::{new_encoder, EncoderConfig};
//! use airlock_streaming::Codec;
//!
//! # fn main() -> Result<(), airlock_streaming::encode::EncodeError> {
//! let config =
//!     EncoderConfig { codec: Codec::H264, width: 1280, height: 800, fps: 30, bitrate_bps: 2_000_000 };
//! let mut encoder = new_encoder(&config)?;
//! let screen = vec![0u8; 1280 * 800 * 4];
//! if let Some(frame) = encoder.encode(&screen, false)? {
//!     assert!(frame.keyframe); // the first frame always is
//! }
//! encoder.reconfigure(500_000, 5)?; // no keyframe needed
//! # Ok(())
//! # }
//! ```
//!
//! Keyframes come for the first frame, when asked for (`force_keyframe`, e.g. on a PLI) and, for
//! H.264 only, when most of the screen changes (openh264 insists on scene-change detection in its
//! screen-content mode). There is no keyframe interval and neither encoder drops frames, so a
//! forced keyframe always comes out.
//!
//! Measured on the development machine (2 cores shared with other builds, load ~2), release
//! build, one thread, 2 Mbps at 30 fps, a synthetic 1280x800 desktop whose terminal is full of
//! 1-pixel strokes (harder than real text); per-frame medians, range over three runs of the
//! ignored `time_1280x800` tests, encoder times including the conversion:
//! `cargo test --release -p airlock-streaming --lib encode -- --ignored --nocapture`.
//!
//! | | keyframe | one typed character | unchanged frame |
//! |---|---|---|---|
//! | [`bgrx_to_i420`] | 0.63–0.71 ms (AVX2; 1.3 ms without) | | |
//! | H.264 | 6–10 ms, 60 KB | 5.8–6.0 ms, 18 B | 5.8–6.0 ms, 13 B |
//! | VP8 | 11–15 ms, 31 KB | 3.4–3.7 ms, 3.8 KB | 3.4–3.5 ms, 3.2 KB (CBR) |

mod h264;
mod vp8;
mod yuv;

pub use h264::H264Encoder;
pub use vp8::Vp8Encoder;
pub use yuv::{bgrx_to_i420, I420Buffer, YuvError};

use crate::Codec;

/// What an encoder is asked to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Which codec.
    pub codec: Codec,
    /// Frame width in pixels; must be even.
    pub width: u16,
    /// Frame height in pixels; must be even.
    pub height: u16,
    /// The frame rate the rate control plans for (frames are encoded when the caller decides).
    pub fps: u32,
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
}

/// One encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// One access unit: H.264 Annex B NAL units (SPS and PPS precede every IDR), or one VP8 frame.
    pub data: Vec<u8>,
    /// Whether a decoder can start from this frame.
    pub keyframe: bool,
}

/// A video encoder for one stream. Runs on a blocking thread; one per stream quality.
pub trait VideoEncoder: Send {
    /// The codec this encoder produces.
    fn codec(&self) -> Codec;

    /// Encodes one BGRX frame (width*height*4 bytes, rows top to bottom, no padding — the X11
    /// layout: bytes B,G,R,X). `force_keyframe` makes this frame a keyframe. Returns `None` when the
    /// encoder produced no output (e.g. skipped by rate control).
    fn encode(&mut self, bgrx: &[u8], force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError>;

    /// Changes the target bitrate and the frame rate the rate control plans for, without
    /// restarting the stream (no keyframe needed).
    fn reconfigure(&mut self, bitrate_bps: u32, fps: u32) -> Result<(), EncodeError>;
}

/// Creates the encoder `config.codec` names.
pub fn new_encoder(config: &EncoderConfig) -> Result<Box<dyn VideoEncoder>, EncodeError> {
    Ok(match config.codec {
        Codec::H264 => Box::new(H264Encoder::new(config)?),
        Codec::Vp8 => Box::new(Vp8Encoder::new(config)?),
    })
}

/// Why an encoder could not be created, encode a frame or change its rate.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Width or height is odd or zero.
    #[error(
        "cannot create a {} encoder for {width}x{height} frames: width and height must be even and nonzero",
        label(*.codec)
    )]
    Dimensions {
        /// The codec asked for.
        codec: Codec,
        /// Requested width.
        width: u16,
        /// Requested height.
        height: u16,
    },
    /// The codec library refused the configuration (or a zero bitrate or frame rate was given).
    #[error("cannot create a {} encoder: {detail}", label(*.codec))]
    Init {
        /// The codec asked for.
        codec: Codec,
        /// What failed, with the library's own message.
        detail: String,
    },
    /// The frame buffer does not hold exactly one frame of the configured size.
    #[error("{} encoder: got {got} bytes, a {width}x{height} BGRX frame needs {needed}", label(*.codec))]
    FrameSize {
        /// The encoder's codec.
        codec: Codec,
        /// Bytes passed in.
        got: usize,
        /// Bytes a frame needs (`width * height * 4`).
        needed: usize,
        /// Configured width.
        width: u16,
        /// Configured height.
        height: u16,
    },
    /// The codec library failed to encode a frame.
    #[error("the {} encoder failed to encode a frame: {detail}", label(*.codec))]
    Encode {
        /// The encoder's codec.
        codec: Codec,
        /// What failed, with the library's own message or status.
        detail: String,
    },
    /// The codec library refused an option while the encoder was being set up.
    #[error("cannot create a {} encoder", label(*.codec))]
    InitOption {
        /// The codec asked for.
        codec: Codec,
        /// The option refused.
        #[source]
        source: CodecOptionError,
    },
    /// The codec library refused the new bitrate or frame rate; what was not applied stays as it was.
    #[error("the {} encoder cannot switch to {bitrate_bps} bps at {fps} fps", label(*.codec))]
    RateRefused {
        /// The encoder's codec.
        codec: Codec,
        /// Requested bitrate.
        bitrate_bps: u32,
        /// Requested frame rate.
        fps: u32,
        /// The option refused.
        #[source]
        source: CodecOptionError,
    },
    /// The new bitrate or frame rate was refused; what was not applied stays as it was.
    #[error("the {} encoder cannot switch to {bitrate_bps} bps at {fps} fps: {detail}", label(*.codec))]
    Reconfigure {
        /// The encoder's codec.
        codec: Codec,
        /// Requested bitrate.
        bitrate_bps: u32,
        /// Requested frame rate.
        fps: u32,
        /// What failed, with the library's own message or status.
        detail: String,
    },
}

/// A codec library refused to set an encoder option (an openh264 `SetOption`, a libvpx control).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecOptionError {
    /// The bitrate does not fit openh264's `int`.
    #[error(
        "the bitrate {bitrate_bps} bps is too large for openh264 (at most {} bps)",
        i32::MAX
    )]
    BitrateTooLarge {
        /// The bitrate asked for.
        bitrate_bps: u32,
    },
    /// openh264's `SetOption` returned a nonzero status.
    #[error("openh264 refused SetOption({option}) with status {status}")]
    OpenH264 {
        /// The option (`ENCODER_OPTION_BITRATE`, ...).
        option: &'static str,
        /// The status `SetOption` returned.
        status: i32,
    },
    /// libvpx refused a control.
    #[error(
        "libvpx refused control {control} = {value}: {status_text} (status {status}){}",
        .detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    Libvpx {
        /// The control (`VP8E_SET_CPUUSED`, ...).
        control: String,
        /// The value it was given.
        value: i32,
        /// The `vpx_codec_err_t` status code.
        status: i32,
        /// libvpx's name for the status.
        status_text: String,
        /// libvpx's detail message for the error, if it gave one.
        detail: Option<String>,
    },
}

/// The codec's name in messages.
fn label(codec: Codec) -> &'static str {
    match codec {
        Codec::H264 => "H.264",
        Codec::Vp8 => "VP8",
    }
}

/// Checks what both encoders need from a configuration and allocates the I420 buffer.
fn checked_buffer(config: &EncoderConfig) -> Result<I420Buffer, EncodeError> {
    let codec = config.codec;
    if config.bitrate_bps == 0 || config.fps == 0 {
        return Err(EncodeError::Init {
            codec,
            detail: format!(
                "the bitrate ({} bps) and frame rate ({} fps) must be positive",
                config.bitrate_bps, config.fps
            ),
        });
    }
    I420Buffer::new(usize::from(config.width), usize::from(config.height)).map_err(|_| {
        EncodeError::Dimensions {
            codec,
            width: config.width,
            height: config.height,
        }
    })
}

/// Converts a frame into `buffer`, naming `codec` if its size is wrong.
fn convert_frame(codec: Codec, bgrx: &[u8], buffer: &mut I420Buffer) -> Result<(), EncodeError> {
    bgrx_to_i420(bgrx, buffer).map_err(|_| EncodeError::FrameSize {
        codec,
        got: bgrx.len(),
        needed: buffer.bgrx_len(),
        width: buffer.width() as u16,
        height: buffer.height() as u16,
    })
}

/// Refuses a zero bitrate or frame rate in `reconfigure`.
fn check_rate(codec: Codec, bitrate_bps: u32, fps: u32) -> Result<(), EncodeError> {
    if bitrate_bps == 0 || fps == 0 {
        return Err(EncodeError::Reconfigure {
            codec,
            bitrate_bps,
            fps,
            detail: "the bitrate and frame rate must be positive".to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testing {
    //! A synthetic desktop shared by the encoder tests.

    /// Frame size used by the tests.
    pub const W: usize = 1280;
    /// Frame size used by the tests.
    pub const H: usize = 800;

    /// Fills a rectangle with a BGR colour.
    pub fn fill(frame: &mut [u8], x: usize, y: usize, w: usize, h: usize, bgr: [u8; 3]) {
        for row in y..y + h {
            for px in frame[(row * W + x) * 4..(row * W + x + w) * 4].chunks_exact_mut(4) {
                px.copy_from_slice(&[bgr[0], bgr[1], bgr[2], 0]);
            }
        }
    }

    /// Grey background, a blue title bar, a red and a green window, a white terminal with
    /// black text-like stripes.
    pub fn desktop() -> Vec<u8> {
        let mut f = vec![0u8; W * H * 4];
        fill(&mut f, 0, 0, W, H, [128, 128, 128]);
        fill(&mut f, 0, 0, W, 32, [200, 80, 20]);
        fill(&mut f, 64, 96, 320, 240, [30, 30, 220]);
        fill(&mut f, 448, 96, 320, 240, [40, 200, 40]);
        draw_terminal(&mut f, 0);
        f
    }

    /// Redraws the terminal with text that depends on `seed` (a full-terminal scroll or redraw).
    pub fn draw_terminal(frame: &mut [u8], seed: usize) {
        fill(frame, 64, 400, 960, 352, [255, 255, 255]);
        for line in 0..20 {
            let y = 408 + line * 16;
            let mut x = 72;
            while x < 1000 {
                // "Words" of thin vertical strokes.
                let len = 8 + (x * 7 + (line + seed) * 13) % 40;
                for stroke in (0..len).step_by(3) {
                    fill(frame, x + stroke, y, 1, 10, [0, 0, 0]);
                }
                x += len + 8;
            }
        }
    }

    /// The average RGB of a `size`x`size` block at (`x`, `y`) of a decoded I420 picture (BT.601
    /// limited range back to RGB); `strides` are the Y, U and V row strides.
    pub fn block_rgb(
        planes: (&[u8], &[u8], &[u8]),
        strides: (usize, usize, usize),
        x: usize,
        y: usize,
        size: usize,
    ) -> [f64; 3] {
        let ((py, pu, pv), (sy, su, sv)) = (planes, strides);
        let mut sum = [0.0; 3];
        for row in y..y + size {
            for col in x..x + size {
                let l = 1.164 * (f64::from(py[row * sy + col]) - 16.0);
                let u = f64::from(pu[row / 2 * su + col / 2]) - 128.0;
                let v = f64::from(pv[row / 2 * sv + col / 2]) - 128.0;
                sum[0] += l + 1.596 * v;
                sum[1] += l - 0.392 * u - 0.813 * v;
                sum[2] += l + 2.017 * u;
            }
        }
        sum.map(|s| s / (size * size) as f64)
    }

    /// Asserts each channel is within 12 of the expected RGB.
    pub fn assert_close(got: [f64; 3], rgb: [f64; 3], what: &str) {
        for c in 0..3 {
            assert!(
                (got[c] - rgb[c]).abs() < 12.0,
                "{what}: decoded {got:?}, expected RGB {rgb:?}"
            );
        }
    }

    /// Changes the rate mid-stream (down, up, down), then draws an orange box at (700, 100) and
    /// encodes it: the result must be a delta frame, which the caller decodes.
    pub fn reconfigure_then_change(
        encoder: &mut dyn super::VideoEncoder,
        frame: &mut [u8],
    ) -> super::EncodedFrame {
        encoder.reconfigure(300_000, 5).expect("reconfigure down");
        encoder.reconfigure(4_000_000, 60).expect("reconfigure up");
        encoder.reconfigure(500_000, 10).expect("reconfigure down again");
        fill(frame, 700, 100, 400, 200, [0, 200, 255]);
        let after = encoder
            .encode(frame, false)
            .expect("encode")
            .expect("frame after reconfigure");
        assert!(!after.keyframe);
        after
    }

    /// The checks every encoder shares: a wrong buffer size is an error naming both sizes, and odd
    /// or zero dimensions are refused at creation. Returns the encoder made from `config`.
    pub fn check_size_errors<E: super::VideoEncoder>(
        name: &str,
        config: &super::EncoderConfig,
        new: impl Fn(&super::EncoderConfig) -> Result<E, super::EncodeError>,
    ) -> E {
        let mut encoder = new(config).expect("encoder");
        let err = encoder.encode(&[0; 100], false).expect_err("a 100-byte frame");
        assert_eq!(
            err.to_string(),
            format!("{name} encoder: got 100 bytes, a 1280x800 BGRX frame needs 4096000")
        );
        for (width, height) in [(1281, 800), (1280, 799), (0, 800)] {
            let err = new(&super::EncoderConfig {
                width,
                height,
                ..*config
            })
            .err()
            .expect("refused");
            assert!(matches!(err, super::EncodeError::Dimensions { .. }), "{err}");
        }
        encoder
    }

    /// Types one more "character" into the terminal (a small 7x10 block) at position `n`.
    pub fn type_char(frame: &mut [u8], n: usize) {
        fill(frame, 72 + (n % 100) * 9, 736, 7, 10, [0, 0, 0]);
    }

    /// Prints mean and median time and mean size of keyframes, small changes and idle frames.
    pub fn time_encoder(name: &str, encoder: &mut dyn super::VideoEncoder) {
        let mut frame = desktop();
        let mut run = |frame: &[u8], force: bool| {
            let start = std::time::Instant::now();
            let out = encoder.encode(frame, force).unwrap();
            (
                start.elapsed().as_secs_f64() * 1e3,
                out.map_or(0, |f| f.data.len()),
            )
        };
        let (mut key, mut small, mut idle) = (vec![run(&frame, false)], Vec::new(), Vec::new());
        for round in 0..4 {
            // Let the rate control settle after the keyframe, then type, then stay idle.
            for _ in 0..15 {
                run(&frame, false);
            }
            for i in 0..15 {
                type_char(&mut frame, round * 15 + i);
                small.push(run(&frame, false));
            }
            for _ in 0..15 {
                idle.push(run(&frame, false));
            }
            key.push(run(&frame, true));
        }
        for (kind, mut samples) in [("keyframe", key), ("small change", small), ("idle", idle)] {
            let n = samples.len();
            let bytes = samples.iter().map(|s| s.1).sum::<usize>() / n;
            samples.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mean = samples.iter().map(|s| s.0).sum::<f64>() / n as f64;
            println!(
                "{name} {kind}: mean {mean:.2} ms, p50 {:.2} ms, mean {bytes} bytes ({n} frames)",
                samples[n / 2].0
            );
        }
    }
}
