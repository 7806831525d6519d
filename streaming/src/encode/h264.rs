//! H.264 through openh264: constrained baseline, screen-content real-time mode, bitrate rate control.

use std::ffi::{c_char, c_int, c_void, CStr};

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig as OpenH264Config, FrameRate, FrameType, IntraFramePeriod,
    Profile, RateControlMode, UsageType, VuiConfig,
};
use openh264::formats::YUVSlices;
use openh264::{OpenH264API, Timestamp};

use super::{
    check_rate, checked_buffer, convert_frame, CodecOptionError, EncodeError, EncodedFrame, EncoderConfig,
    I420Buffer, VideoEncoder,
};
use crate::Codec;

// The `openh264` crate does not re-export the C API's option ids and `SBitrateInfo`, and this crate
// does not depend on `openh264-sys2` directly, so the few values `SetOption` needs are mirrored
// here from openh264's `codec_app_def.h` / `codec_def.h` (stable parts of its ABI).
/// `ENCODER_OPTION_FRAME_RATE`: takes a `float`.
const ENCODER_OPTION_FRAME_RATE: c_int = 4;
/// `ENCODER_OPTION_BITRATE`: takes an `SBitrateInfo`.
const ENCODER_OPTION_BITRATE: c_int = 5;
/// `ENCODER_OPTION_MAX_BITRATE`: takes an `SBitrateInfo`.
const ENCODER_OPTION_MAX_BITRATE: c_int = 6;
/// `ENCODER_OPTION_TRACE_CALLBACK`: takes a `WelsTraceCallback`.
const ENCODER_OPTION_TRACE_CALLBACK: c_int = 26;
/// `WELS_LOG_ERROR`.
const WELS_LOG_ERROR: c_int = 1;
/// `SPATIAL_LAYER_0`.
const SPATIAL_LAYER_0: c_int = 0;
/// `SPATIAL_LAYER_ALL`.
const SPATIAL_LAYER_ALL: c_int = 4;

/// `SBitrateInfo` from `codec_app_def.h`.
#[repr(C)]
struct BitrateInfo {
    /// `LAYER_NUM iLayer`.
    layer: c_int,
    /// `int iBitrate`, in bits per second.
    bitrate: c_int,
}

/// `WelsTraceCallback` from `codec_api.h`.
type TraceCallback = unsafe extern "C" fn(context: *mut c_void, level: c_int, message: *const c_char);

/// Sends openh264's log lines to `tracing` instead of stderr. openh264 logs warnings while it
/// initializes (it then turns logging off): errors go out as warnings, the rest as debug.
unsafe extern "C" fn forward_log(_context: *mut c_void, level: c_int, message: *const c_char) {
    if message.is_null() {
        return;
    }
    // SAFETY: openh264 passes a NUL-terminated message that is valid for the duration of the call.
    let message = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    let message = message.trim_end();
    if level <= WELS_LOG_ERROR {
        tracing::warn!(target: "openh264", "{message}");
    } else {
        tracing::debug!(target: "openh264", "{message}");
    }
}

/// An openh264 encoder for one stream.
///
/// Settings: constrained baseline (what every WebRTC peer decodes), `SCREEN_CONTENT_REAL_TIME`
/// usage (screen-specific motion search and reference choice), `RC_BITRATE_MODE` with frame
/// skipping off (a static screen still gets every frame, in particular a forced IDR), one thread
/// and one slice (one NAL unit per picture), low complexity (the measured sweet spot: ~7 ms at
/// 1280x800), no periodic IDR (keyframes on demand), SPS and PPS before every IDR, and BT.601
/// limited-range colour signalled in the VUI (what [`super::bgrx_to_i420`] produces). Frames get
/// timestamps `1000 / fps` ms apart, which is how openh264's rate control learns the frame rate.
///
/// openh264 insists on scene-change detection for screen content: a change of most of the screen
/// comes out as an IDR (marked as a keyframe) rather than a P frame of about the same size.
/// After a keyframe its rate control refines the picture over the next few frames (hundreds of
/// bytes to a few KB each) even if the screen is unchanged; then a static screen costs ~13 bytes
/// a frame.
pub struct H264Encoder {
    encoder: Encoder,
    yuv: I420Buffer,
    bitrate_bps: u32,
    fps: u32,
    /// Timestamp of the next frame, in milliseconds.
    next_timestamp_ms: f64,
    /// Whether openh264 has been initialized: the `openh264` crate does that on the first frame.
    started: bool,
}

impl H264Encoder {
    /// Creates an encoder. Width and height must be even; openh264 itself accepts up to 3840x2160
    /// and reports larger sizes on the first frame.
    pub fn new(config: &EncoderConfig) -> Result<H264Encoder, EncodeError> {
        let yuv = checked_buffer(&EncoderConfig {
            codec: Codec::H264,
            ..*config
        })?;
        let encoder = create(config.bitrate_bps, config.fps)?;
        Ok(H264Encoder {
            encoder,
            yuv,
            bitrate_bps: config.bitrate_bps,
            fps: config.fps,
            next_timestamp_ms: 0.0,
            started: false,
        })
    }

    /// Calls `SetOption` with an `SBitrateInfo` for spatial layer `layer`.
    fn set_bitrate_option(
        &mut self,
        option: c_int,
        layer: c_int,
        bitrate_bps: u32,
    ) -> Result<(), CodecOptionError> {
        let mut info = BitrateInfo {
            layer,
            bitrate: c_int::try_from(bitrate_bps)
                .map_err(|_| CodecOptionError::BitrateTooLarge { bitrate_bps })?,
        };
        // SAFETY: the encoder is initialized (`started`), `option` is one of the bitrate options,
        // which read an `SBitrateInfo` (mirrored with the same `repr(C)` layout) through the pointer
        // during the call only; `info` outlives the call. These options change only rate-control
        // parameters, which the `openh264` wrapper does not cache.
        let status = unsafe {
            self.encoder
                .raw_api()
                .set_option(option, (&raw mut info).cast::<c_void>())
        };
        match status {
            0 => Ok(()),
            status => Err(CodecOptionError::OpenH264 {
                option: option_name(option),
                status,
            }),
        }
    }

    fn set_frame_rate_option(&mut self, fps: u32) -> Result<(), CodecOptionError> {
        let mut rate = fps as f32;
        // SAFETY: the encoder is initialized (`started`); `ENCODER_OPTION_FRAME_RATE` reads one
        // `float` through the pointer during the call only, and `rate` outlives the call.
        let status = unsafe {
            self.encoder
                .raw_api()
                .set_option(ENCODER_OPTION_FRAME_RATE, (&raw mut rate).cast::<c_void>())
        };
        match status {
            0 => Ok(()),
            status => Err(CodecOptionError::OpenH264 {
                option: option_name(ENCODER_OPTION_FRAME_RATE),
                status,
            }),
        }
    }

    /// Applies a new rate to the running encoder. The maximum bitrate must never drop below the
    /// target (openh264 rejects that), so it is raised before and lowered after the target.
    fn set_rate(&mut self, bitrate_bps: u32, fps: u32) -> Result<(), CodecOptionError> {
        if bitrate_bps > self.bitrate_bps {
            self.set_bitrate_option(ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0, bitrate_bps)?;
            self.set_bitrate_option(ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL, bitrate_bps)?;
        } else {
            self.set_bitrate_option(ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL, bitrate_bps)?;
            self.set_bitrate_option(ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0, bitrate_bps)?;
        }
        self.bitrate_bps = bitrate_bps;
        self.set_frame_rate_option(fps)?;
        self.fps = fps;
        Ok(())
    }
}

/// The C name of an option id used here, for messages.
fn option_name(option: c_int) -> &'static str {
    match option {
        ENCODER_OPTION_FRAME_RATE => "ENCODER_OPTION_FRAME_RATE",
        ENCODER_OPTION_BITRATE => "ENCODER_OPTION_BITRATE",
        ENCODER_OPTION_MAX_BITRATE => "ENCODER_OPTION_MAX_BITRATE",
        ENCODER_OPTION_TRACE_CALLBACK => "ENCODER_OPTION_TRACE_CALLBACK",
        _ => "an unnamed option",
    }
}

/// The openh264 settings; see [`H264Encoder`].
fn create(bitrate_bps: u32, fps: u32) -> Result<Encoder, EncodeError> {
    let settings = OpenH264Config::new()
        .usage_type(UsageType::ScreenContentRealTime)
        .profile(Profile::Baseline)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(bitrate_bps))
        .max_frame_rate(FrameRate::from_hz(fps as f32))
        .skip_frames(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(0))
        // Not supported for screen content: openh264 would turn them off with a warning.
        .adaptive_quantization(false)
        .background_detection(false)
        .complexity(Complexity::Low)
        .num_threads(1)
        .vui(VuiConfig::bt601());
    let mut encoder =
        Encoder::with_api_config(OpenH264API::from_source(), settings).map_err(|e| EncodeError::Init {
            codec: Codec::H264,
            detail: format!("openh264: {e}"),
        })?;
    let mut callback: TraceCallback = forward_log;
    // SAFETY: the trace callback is one of the options openh264 accepts before initialization;
    // it copies the function pointer out of `callback` during the call. `forward_log` matches
    // `WelsTraceCallback` and may be called from whichever thread encodes.
    let status = unsafe {
        encoder.raw_api().set_option(
            ENCODER_OPTION_TRACE_CALLBACK,
            (&raw mut callback).cast::<c_void>(),
        )
    };
    if status != 0 {
        tracing::debug!("openh264 refused the log callback (status {status}); it logs to stderr");
    }
    Ok(encoder)
}

impl VideoEncoder for H264Encoder {
    fn codec(&self) -> Codec {
        Codec::H264
    }

    fn encode(&mut self, bgrx: &[u8], force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError> {
        convert_frame(Codec::H264, bgrx, &mut self.yuv)?;
        // Before the first frame there is nothing to force: openh264 starts with an IDR.
        if force_keyframe && self.started {
            self.encoder.force_intra_frame();
        }
        let (w, h) = (self.yuv.width(), self.yuv.height());
        let source = YUVSlices::new(
            (self.yuv.y(), self.yuv.u(), self.yuv.v()),
            (w, h),
            (w, w / 2, w / 2),
        );
        let timestamp = Timestamp::from_millis(self.next_timestamp_ms as u64);
        let first = !self.started;
        let bitstream = self.encoder.encode_at(&source, timestamp).map_err(|e| {
            if first {
                EncodeError::Init {
                    codec: Codec::H264,
                    detail: format!("openh264 failed to initialize on the first {w}x{h} frame: {e}"),
                }
            } else {
                EncodeError::Encode {
                    codec: Codec::H264,
                    detail: format!("openh264: {e}"),
                }
            }
        })?;
        self.started = true;
        self.next_timestamp_ms += 1000.0 / f64::from(self.fps);

        let keyframe = match bitstream.frame_type() {
            FrameType::IDR | FrameType::I => true,
            FrameType::P | FrameType::IPMixed => false,
            FrameType::Skip | FrameType::Invalid => return Ok(None),
        };
        let mut data = Vec::new();
        bitstream.write_vec(&mut data);
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedFrame { data, keyframe }))
    }

    fn reconfigure(&mut self, bitrate_bps: u32, fps: u32) -> Result<(), EncodeError> {
        check_rate(Codec::H264, bitrate_bps, fps)?;
        let to_error = |detail: String| EncodeError::Reconfigure {
            codec: Codec::H264,
            bitrate_bps,
            fps,
            detail,
        };
        if !self.started {
            // Nothing encoded yet, so openh264 is not initialized and `SetOption` would fail:
            // start over with the new settings instead.
            self.encoder = create(bitrate_bps, fps).map_err(|e| to_error(e.to_string()))?;
            self.bitrate_bps = bitrate_bps;
            self.fps = fps;
            return Ok(());
        }
        self.set_rate(bitrate_bps, fps)
            .map_err(|source| EncodeError::RateRefused {
                codec: Codec::H264,
                bitrate_bps,
                fps,
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use openh264::decoder::Decoder;
    use openh264::formats::YUVSource;

    use super::*;
    use crate::encode::testing::{
        assert_close, block_rgb, desktop, draw_terminal, reconfigure_then_change, type_char, H, W,
    };

    fn config() -> EncoderConfig {
        EncoderConfig {
            codec: Codec::H264,
            width: W as u16,
            height: H as u16,
            fps: 30,
            bitrate_bps: 2_000_000,
        }
    }

    /// NAL unit types in an Annex B access unit.
    fn nal_types(data: &[u8]) -> Vec<u8> {
        let mut types = Vec::new();
        let mut i = 0;
        while i + 3 < data.len() {
            if data[i..i + 3] == [0, 0, 1] {
                types.push(data[i + 3] & 0x1f);
                i += 3;
            } else {
                i += 1;
            }
        }
        types
    }

    /// The average RGB of a block of the decoded picture.
    fn decoded_rgb(yuv: &impl YUVSource, x: usize, y: usize, size: usize) -> [f64; 3] {
        block_rgb((yuv.y(), yuv.u(), yuv.v()), yuv.strides(), x, y, size)
    }

    #[test]
    fn encodes_keyframes_deltas_and_decodes_with_the_right_colours() {
        let mut encoder = H264Encoder::new(&config()).unwrap();
        let mut decoder = Decoder::new().unwrap();
        let mut frame = desktop();

        let key = encoder.encode(&frame, false).unwrap().expect("first frame");
        assert!(key.keyframe);
        let types = nal_types(&key.data);
        assert_eq!(types, vec![7, 8, 5], "SPS, PPS, one IDR slice");
        // SPS: profile_idc 66 (baseline) with constraint_set0 and constraint_set1 (constrained baseline).
        assert_eq!(&key.data[5..7], &[66, 0xc0]);

        {
            let picture = decoder.decode(&key.data).unwrap().expect("decoded keyframe");
            assert_eq!(picture.dimensions(), (W, H));
            // Red window at (64, 96), green one at (448, 96), title bar, background, terminal.
            assert_close(
                decoded_rgb(&picture, 100, 150, 64),
                [220.0, 30.0, 30.0],
                "red window",
            );
            assert_close(
                decoded_rgb(&picture, 500, 150, 64),
                [40.0, 200.0, 40.0],
                "green window",
            );
            assert_close(
                decoded_rgb(&picture, 600, 8, 16),
                [20.0, 80.0, 200.0],
                "blue title bar",
            );
            assert_close(
                decoded_rgb(&picture, 1100, 500, 64),
                [128.0, 128.0, 128.0],
                "background",
            );
        }

        type_char(&mut frame, 0);
        let delta = encoder.encode(&frame, false).unwrap().expect("delta frame");
        assert!(!delta.keyframe);
        assert_eq!(nal_types(&delta.data), vec![1], "one non-IDR slice");
        assert!(
            delta.data.len() * 20 < key.data.len(),
            "delta {} vs key {}",
            delta.data.len(),
            key.data.len()
        );
        decoder.decode(&delta.data).unwrap();

        let forced = encoder.encode(&frame, true).unwrap().expect("forced keyframe");
        assert!(forced.keyframe);
        assert_eq!(nal_types(&forced.data), vec![7, 8, 5]);
        decoder.decode(&forced.data).unwrap();

        // Unchanged frames: the rate control first refines the keyframe a little, then they are
        // almost empty.
        let mut idle_sizes = Vec::new();
        for _ in 0..20 {
            if let Some(idle) = encoder.encode(&frame, false).unwrap() {
                assert!(!idle.keyframe);
                decoder.decode(&idle.data).unwrap();
                idle_sizes.push(idle.data.len());
            }
        }
        assert!(
            idle_sizes.iter().all(|&n| n * 10 < forced.data.len()),
            "idle sizes {idle_sizes:?}"
        );
        assert!(
            idle_sizes.last().is_some_and(|&n| n < 100),
            "idle sizes {idle_sizes:?}"
        );

        // Mid-stream rate changes, up and down, then a big change decodes fine.
        let after = reconfigure_then_change(&mut encoder, &mut frame);
        let picture = decoder.decode(&after.data).unwrap().expect("decoded frame");
        assert_close(
            decoded_rgb(&picture, 800, 150, 32),
            [255.0, 200.0, 0.0],
            "new orange box",
        );
    }

    #[test]
    fn lower_bitrate_gives_smaller_frames() {
        let sizes = |bitrate_bps: u32| {
            let mut encoder = H264Encoder::new(&config()).unwrap();
            let mut frame = desktop();
            encoder.encode(&frame, false).unwrap();
            encoder.reconfigure(bitrate_bps, 30).unwrap();
            let mut total = 0;
            for i in 0..6 {
                draw_terminal(&mut frame, i + 1);
                total += encoder.encode(&frame, false).unwrap().map_or(0, |f| f.data.len());
            }
            total
        };
        let (high, low) = (sizes(4_000_000), sizes(100_000));
        assert!(low < high, "100 kbps gave {low} bytes, 4 Mbps gave {high}");
    }

    #[test]
    fn reconfigure_before_the_first_frame() {
        let mut encoder = H264Encoder::new(&config()).unwrap();
        encoder.reconfigure(800_000, 15).unwrap();
        let key = encoder.encode(&desktop(), true).unwrap().expect("first frame");
        assert!(key.keyframe);
        assert!(encoder.reconfigure(0, 15).is_err());
    }

    #[test]
    fn wrong_sizes_are_errors() {
        crate::encode::testing::check_size_errors("H.264", &config(), H264Encoder::new);
        assert!(matches!(
            H264Encoder::new(&EncoderConfig { fps: 0, ..config() }),
            Err(EncodeError::Init { .. })
        ));
    }

    /// `cargo test -p airlock-streaming --release --lib encode::h264 -- --ignored --nocapture`
    #[test]
    #[ignore = "timing, run in release"]
    fn time_1280x800() {
        crate::encode::testing::time_encoder("H.264", &mut H264Encoder::new(&config()).unwrap());
    }
}
