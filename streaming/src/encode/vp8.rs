//! VP8 through libvpx (`env-libvpx-sys`): one-pass CBR, real-time deadline, screen-content mode.

use std::ffi::{c_int, c_long, c_ulong, CStr};
use std::mem::MaybeUninit;
use std::ptr;

use vpx_sys::{
    vp8e_enc_control_id, vpx_codec_ctx_t, vpx_codec_cx_pkt_kind, vpx_codec_enc_cfg_t, vpx_codec_err_t,
    vpx_image_t, vpx_img_fmt, vpx_kf_mode, vpx_rc_mode,
};

use super::{
    check_rate, checked_buffer, convert_frame, CodecOptionError, EncodeError, EncodedFrame, EncoderConfig,
    I420Buffer, VideoEncoder,
};
use crate::Codec;

/// Timestamps count in RTP's 90 kHz video clock.
const TIMEBASE_HZ: u32 = 90_000;
/// `cpu-used` for real-time VP8: -6 is what libwebrtc uses on desktop CPUs (speed 6, adaptive).
const CPU_USED: c_int = -6;

/// A libvpx VP8 encoder for one stream.
///
/// Settings: one pass, `VPX_DL_REALTIME`, `cpu-used` -6, screen-content mode 1 (screen tools
/// without its frame dropping), static threshold 1 (unchanged blocks are skipped cheaply), no noise
/// reduction, error resilient, no look-ahead (`g_lag_in_frames` 0), one thread, keyframes only
/// on the first frame and on demand (`kf_mode` disabled), CBR with libwebrtc's buffer model
/// (0.5 s initial, 0.6 s optimal, 1 s buffer, 100 % undershoot, 15 % overshoot), quantizer 2..=56,
/// no frame dropping and no resizing. Frames are `90000 / fps` ticks apart on a 90 kHz clock,
/// which is how libvpx learns the frame rate. With CBR, libvpx keeps spending the budget on an
/// unchanged screen, so callers only encode frames that changed.
pub struct Vp8Encoder {
    /// Boxed: libvpx keeps pointers into the context and the configuration between calls.
    ctx: Box<vpx_codec_ctx_t>,
    cfg: Box<vpx_codec_enc_cfg_t>,
    yuv: I420Buffer,
    fps: u32,
    /// Timestamp of the next frame, in 90 kHz ticks.
    pts: i64,
}

// SAFETY: a libvpx encoder context is not tied to the thread that created it; it only needs calls
// on it not to overlap, which `&mut self` guarantees. The raw pointers inside the context and the
// configuration point to memory owned by this value (the boxes) or by libvpx for this context.
unsafe impl Send for Vp8Encoder {}

impl Vp8Encoder {
    /// Creates an encoder. Width and height must be even (and at most 16383, VP8's limit).
    pub fn new(config: &EncoderConfig) -> Result<Vp8Encoder, EncodeError> {
        let yuv = checked_buffer(&EncoderConfig {
            codec: Codec::Vp8,
            ..*config
        })?;
        let init_error = |detail: String| EncodeError::Init {
            codec: Codec::Vp8,
            detail,
        };

        // SAFETY: `vpx_codec_vp8_cx` returns a pointer to libvpx's static VP8 encoder interface.
        let iface = unsafe { vpx_sys::vpx_codec_vp8_cx() };
        // SAFETY: the configuration is a plain C struct of integers, rationals and null-able
        // pointers, for which all-zero bytes are a valid value; libvpx overwrites it right away.
        let mut cfg: Box<vpx_codec_enc_cfg_t> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        // SAFETY: `iface` is valid and `cfg` points to a writable configuration.
        let status = unsafe { vpx_sys::vpx_codec_enc_config_default(iface, &mut *cfg, 0) };
        if status != vpx_codec_err_t::VPX_CODEC_OK {
            return Err(init_error(format!(
                "vpx_codec_enc_config_default: {}",
                status_text(status)
            )));
        }
        cfg.g_w = u32::from(config.width);
        cfg.g_h = u32::from(config.height);
        cfg.g_timebase = vpx_sys::vpx_rational {
            num: 1,
            den: TIMEBASE_HZ as c_int,
        };
        cfg.g_threads = 1;
        cfg.g_lag_in_frames = 0;
        cfg.g_error_resilient = vpx_sys::VPX_ERROR_RESILIENT_DEFAULT;
        cfg.rc_end_usage = vpx_rc_mode::VPX_CBR;
        cfg.rc_target_bitrate = kbps(config.bitrate_bps);
        cfg.rc_min_quantizer = 2;
        cfg.rc_max_quantizer = 56;
        cfg.rc_undershoot_pct = 100;
        cfg.rc_overshoot_pct = 15;
        cfg.rc_buf_initial_sz = 500;
        cfg.rc_buf_optimal_sz = 600;
        cfg.rc_buf_sz = 1000;
        cfg.rc_dropframe_thresh = 0;
        cfg.rc_resize_allowed = 0;
        cfg.kf_mode = vpx_kf_mode::VPX_KF_DISABLED;
        cfg.kf_min_dist = 0;
        // Unused while keyframes are disabled; kept far away in case libvpx ever consults it.
        cfg.kf_max_dist = 1_000_000;

        // SAFETY: all-zero bytes are the documented "not yet initialized" context.
        let mut ctx: Box<vpx_codec_ctx_t> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        // SAFETY: `ctx` and `cfg` are valid, boxed (stable addresses) and outlive the encoder, as
        // libvpx requires; the ABI version is the one the bindings were generated for.
        let status = unsafe {
            vpx_sys::vpx_codec_enc_init_ver(
                &mut *ctx,
                iface,
                &*cfg,
                0,
                vpx_sys::VPX_ENCODER_ABI_VERSION as c_int,
            )
        };
        if status != vpx_codec_err_t::VPX_CODEC_OK {
            // libvpx has already released the context after a failed init.
            let detail = error_text(&mut ctx, status);
            return Err(init_error(format!("vpx_codec_enc_init: {detail}")));
        }
        let mut encoder = Vp8Encoder {
            ctx,
            cfg,
            yuv,
            fps: config.fps,
            pts: 0,
        };
        for (control, value) in [
            (vp8e_enc_control_id::VP8E_SET_CPUUSED, CPU_USED),
            (vp8e_enc_control_id::VP8E_SET_SCREEN_CONTENT_MODE, 1),
            (vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD, 1),
            (vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY, 0),
        ] {
            encoder
                .control(control, value)
                .map_err(|source| EncodeError::InitOption {
                    codec: Codec::Vp8,
                    source,
                })?;
        }
        Ok(encoder)
    }

    /// Sets one integer encoder control.
    fn control(&mut self, control: vp8e_enc_control_id, value: c_int) -> Result<(), CodecOptionError> {
        // SAFETY: the context is initialized; every control used here takes one `int` argument,
        // which is what is passed through the variadic call.
        let status = unsafe { vpx_sys::vpx_codec_control_(&mut *self.ctx, control as c_int, value) };
        if status != vpx_codec_err_t::VPX_CODEC_OK {
            return Err(CodecOptionError::Libvpx {
                control: format!("{control:?}"),
                value,
                status: status as i32,
                status_text: status_text(status),
                detail: error_detail(&mut self.ctx),
            });
        }
        Ok(())
    }

    /// Frame duration in 90 kHz ticks.
    fn duration(&self) -> i64 {
        i64::from(TIMEBASE_HZ / self.fps.clamp(1, TIMEBASE_HZ))
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialized in `new` and is destroyed exactly once, here.
        let status = unsafe { vpx_sys::vpx_codec_destroy(&mut *self.ctx) };
        if status != vpx_codec_err_t::VPX_CODEC_OK {
            tracing::warn!("vpx_codec_destroy failed: {}", status_text(status));
        }
    }
}

impl VideoEncoder for Vp8Encoder {
    fn codec(&self) -> Codec {
        Codec::Vp8
    }

    fn encode(&mut self, bgrx: &[u8], force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError> {
        convert_frame(Codec::Vp8, bgrx, &mut self.yuv)?;
        let encode_error = |detail: String| EncodeError::Encode {
            codec: Codec::Vp8,
            detail,
        };

        // SAFETY: all-zero bytes are a valid `vpx_image_t` (null pointers, zero sizes);
        // `vpx_img_wrap` fills it in.
        let mut image: vpx_image_t = unsafe { MaybeUninit::zeroed().assume_init() };
        let (width, height) = (self.cfg.g_w, self.cfg.g_h);
        // SAFETY: the buffer holds a packed I420 picture of exactly `width` x `height` (Y, then U,
        // then V, no padding), which is what alignment 1 describes. The image only borrows it for
        // this call, during which `self.yuv` is not touched; libvpx only reads input pictures, so
        // the `*mut` cast never leads to a write.
        let wrapped = unsafe {
            vpx_sys::vpx_img_wrap(
                &mut image,
                vpx_img_fmt::VPX_IMG_FMT_I420,
                width,
                height,
                1,
                self.yuv.as_bytes().as_ptr().cast_mut(),
            )
        };
        if wrapped.is_null() {
            return Err(encode_error(format!(
                "vpx_img_wrap refused a {width}x{height} I420 picture"
            )));
        }

        let flags: vpx_sys::vpx_enc_frame_flags_t = if force_keyframe {
            vpx_sys::VPX_EFLAG_FORCE_KF as c_long
        } else {
            0
        };
        let duration = self.duration();
        // SAFETY: the context is initialized; `image` describes live memory (see above) for the
        // whole call; libvpx copies what it needs before returning because `g_lag_in_frames` is 0.
        let status = unsafe {
            vpx_sys::vpx_codec_encode(
                &mut *self.ctx,
                &image,
                self.pts,
                duration as c_ulong,
                flags,
                c_ulong::from(vpx_sys::VPX_DL_REALTIME),
            )
        };
        if status != vpx_codec_err_t::VPX_CODEC_OK {
            return Err(encode_error(format!(
                "vpx_codec_encode: {}",
                error_text(&mut self.ctx, status)
            )));
        }
        self.pts += duration;

        let mut data = Vec::new();
        let mut keyframe = false;
        let mut iter: vpx_sys::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: the context is initialized and `iter` starts null, as libvpx requires.
            let packet = unsafe { vpx_sys::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            // SAFETY: libvpx returns null or a pointer to a packet that stays valid until the next
            // call on the context; it is only read before that.
            let Some(packet) = (unsafe { packet.as_ref() }) else {
                break;
            };
            if packet.kind != vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: `frame` is the active union member for frame packets.
            let frame = unsafe { packet.data.frame };
            if frame.sz > 0 && !frame.buf.is_null() {
                // SAFETY: libvpx guarantees `buf` points to `sz` readable bytes for this packet.
                let bytes = unsafe { std::slice::from_raw_parts(frame.buf.cast::<u8>(), frame.sz as usize) };
                data.extend_from_slice(bytes);
            }
            keyframe |= frame.flags & vpx_sys::VPX_FRAME_IS_KEY != 0;
        }
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedFrame { data, keyframe }))
    }

    fn reconfigure(&mut self, bitrate_bps: u32, fps: u32) -> Result<(), EncodeError> {
        check_rate(Codec::Vp8, bitrate_bps, fps)?;
        let previous = self.cfg.rc_target_bitrate;
        self.cfg.rc_target_bitrate = kbps(bitrate_bps);
        // SAFETY: the context is initialized and `cfg` is a valid configuration for it (only the
        // target bitrate changed); libvpx keeps no pointer to it beyond what `new` set up.
        let status = unsafe { vpx_sys::vpx_codec_enc_config_set(&mut *self.ctx, &*self.cfg) };
        if status != vpx_codec_err_t::VPX_CODEC_OK {
            self.cfg.rc_target_bitrate = previous;
            return Err(EncodeError::Reconfigure {
                codec: Codec::Vp8,
                bitrate_bps,
                fps,
                detail: format!("vpx_codec_enc_config_set: {}", error_text(&mut self.ctx, status)),
            });
        }
        // The frame rate takes effect through the next frames' durations.
        self.fps = fps;
        Ok(())
    }
}

/// libvpx counts the bitrate in kbit/s.
fn kbps(bitrate_bps: u32) -> u32 {
    bitrate_bps.div_ceil(1000).max(1)
}

/// libvpx's name for a status code.
fn status_text(status: vpx_codec_err_t) -> String {
    // SAFETY: `vpx_codec_err_to_string` returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(vpx_sys::vpx_codec_err_to_string(status)) }
        .to_string_lossy()
        .into_owned()
}

/// libvpx's detail message for the last error on `ctx`, if it has one.
fn error_detail(ctx: &mut vpx_codec_ctx_t) -> Option<String> {
    // SAFETY: `ctx` is a context libvpx has set up (or cleared after a failed init); the detail is
    // null or a NUL-terminated string owned by libvpx, copied out before any other call.
    unsafe {
        let detail = vpx_sys::vpx_codec_error_detail(ctx);
        (!detail.is_null()).then(|| CStr::from_ptr(detail).to_string_lossy().into_owned())
    }
}

/// The status plus libvpx's detail message for the last error on `ctx`, if it has one.
fn error_text(ctx: &mut vpx_codec_ctx_t, status: vpx_codec_err_t) -> String {
    match error_detail(ctx) {
        Some(detail) => format!("{} ({detail})", status_text(status)),
        None => status_text(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::testing::{
        assert_close, block_rgb, desktop, reconfigure_then_change, type_char, H, W,
    };

    fn config() -> EncoderConfig {
        EncoderConfig {
            codec: Codec::Vp8,
            width: W as u16,
            height: H as u16,
            fps: 30,
            bitrate_bps: 2_000_000,
        }
    }

    /// A libvpx VP8 decoder for checking the output.
    struct Decoder {
        ctx: Box<vpx_codec_ctx_t>,
    }

    /// A decoded I420 picture.
    struct Picture {
        width: usize,
        height: usize,
        y: Vec<u8>,
        u: Vec<u8>,
        v: Vec<u8>,
    }

    impl Decoder {
        fn new() -> Decoder {
            // SAFETY: all-zero bytes are the "not yet initialized" context.
            let mut ctx: Box<vpx_codec_ctx_t> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
            // SAFETY: a zeroed, boxed context; null configuration means defaults.
            let status = unsafe {
                vpx_sys::vpx_codec_dec_init_ver(
                    &mut *ctx,
                    vpx_sys::vpx_codec_vp8_dx(),
                    ptr::null(),
                    0,
                    vpx_sys::VPX_DECODER_ABI_VERSION as c_int,
                )
            };
            assert_eq!(status, vpx_codec_err_t::VPX_CODEC_OK);
            Decoder { ctx }
        }

        fn decode(&mut self, data: &[u8]) -> Picture {
            // SAFETY: the context is initialized; `data` is readable for its length.
            let status = unsafe {
                vpx_sys::vpx_codec_decode(
                    &mut *self.ctx,
                    data.as_ptr(),
                    data.len() as u32,
                    ptr::null_mut(),
                    0,
                )
            };
            assert_eq!(
                status,
                vpx_codec_err_t::VPX_CODEC_OK,
                "{}",
                error_text(&mut self.ctx, status)
            );
            let mut iter: vpx_sys::vpx_codec_iter_t = ptr::null();
            // SAFETY: as above; the image stays valid until the next decode call and is copied now.
            unsafe {
                let image = vpx_sys::vpx_codec_get_frame(&mut *self.ctx, &mut iter)
                    .as_ref()
                    .expect("a picture");
                let (width, height) = (image.d_w as usize, image.d_h as usize);
                let plane = |i: usize, w: usize, h: usize| {
                    let stride = image.stride[i] as usize;
                    (0..h)
                        .flat_map(|row| std::slice::from_raw_parts(image.planes[i].add(row * stride), w))
                        .copied()
                        .collect::<Vec<u8>>()
                };
                Picture {
                    width,
                    height,
                    y: plane(0, width, height),
                    u: plane(1, width / 2, height / 2),
                    v: plane(2, width / 2, height / 2),
                }
            }
        }
    }

    impl Drop for Decoder {
        fn drop(&mut self) {
            // SAFETY: initialized in `new`, destroyed once.
            unsafe { vpx_sys::vpx_codec_destroy(&mut *self.ctx) };
        }
    }

    impl Picture {
        /// Average RGB of a block.
        fn rgb(&self, x: usize, y: usize, size: usize) -> [f64; 3] {
            let chroma = self.width / 2;
            block_rgb(
                (&self.y, &self.u, &self.v),
                (self.width, chroma, chroma),
                x,
                y,
                size,
            )
        }
    }

    /// Checks the uncompressed keyframe header: 3-byte frame tag, start code, 14-bit sizes.
    fn assert_keyframe_header(data: &[u8]) {
        assert_eq!(data[0] & 1, 0, "frame tag says keyframe");
        assert_eq!(&data[3..6], &[0x9d, 0x01, 0x2a]);
        let width = u16::from_le_bytes([data[6], data[7]]) & 0x3fff;
        let height = u16::from_le_bytes([data[8], data[9]]) & 0x3fff;
        assert_eq!((width, height), (W as u16, H as u16));
    }

    #[test]
    fn encodes_keyframes_deltas_and_decodes_with_the_right_colours() {
        let mut encoder = Vp8Encoder::new(&config()).unwrap();
        let mut decoder = Decoder::new();
        let mut frame = desktop();

        let key = encoder.encode(&frame, false).unwrap().expect("first frame");
        assert!(key.keyframe);
        assert_keyframe_header(&key.data);
        let picture = decoder.decode(&key.data);
        assert_eq!((picture.width, picture.height), (W, H));
        assert_close(picture.rgb(100, 150, 64), [220.0, 30.0, 30.0], "red window");
        assert_close(picture.rgb(500, 150, 64), [40.0, 200.0, 40.0], "green window");
        assert_close(picture.rgb(600, 8, 16), [20.0, 80.0, 200.0], "blue title bar");
        assert_close(picture.rgb(1100, 500, 64), [128.0, 128.0, 128.0], "background");

        type_char(&mut frame, 0);
        let delta = encoder.encode(&frame, false).unwrap().expect("delta frame");
        assert!(!delta.keyframe);
        assert_eq!(delta.data[0] & 1, 1, "frame tag says interframe");
        assert!(
            delta.data.len() * 4 < key.data.len(),
            "delta {} vs key {}",
            delta.data.len(),
            key.data.len()
        );
        decoder.decode(&delta.data);

        let forced = encoder.encode(&frame, true).unwrap().expect("forced keyframe");
        assert!(forced.keyframe);
        assert_keyframe_header(&forced.data);
        decoder.decode(&forced.data);

        let idle = encoder.encode(&frame, false).unwrap().expect("idle frame");
        assert!(!idle.keyframe);
        assert!(
            idle.data.len() * 4 < key.data.len(),
            "idle frame is {} bytes",
            idle.data.len()
        );
        decoder.decode(&idle.data);

        let after = reconfigure_then_change(&mut encoder, &mut frame);
        let picture = decoder.decode(&after.data);
        assert_close(picture.rgb(800, 150, 32), [255.0, 200.0, 0.0], "new orange box");
    }

    #[test]
    fn lower_bitrate_gives_smaller_frames() {
        let sizes = |bitrate_bps: u32| {
            let mut encoder = Vp8Encoder::new(&config()).unwrap();
            let mut frame = desktop();
            encoder.encode(&frame, false).unwrap();
            encoder.reconfigure(bitrate_bps, 30).unwrap();
            let mut total = 0;
            // CBR: every frame gets about bitrate / fps, spent on the change and on refinement.
            for i in 0..20 {
                type_char(&mut frame, i);
                total += encoder.encode(&frame, false).unwrap().map_or(0, |f| f.data.len());
            }
            total
        };
        let (high, low) = (sizes(4_000_000), sizes(300_000));
        assert!(low * 2 < high, "300 kbps gave {low} bytes, 4 Mbps gave {high}");
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let mut encoder = crate::encode::testing::check_size_errors("VP8", &config(), Vp8Encoder::new);
        // Beyond VP8's 14-bit size field: libvpx refuses it at init.
        let err = Vp8Encoder::new(&EncoderConfig {
            width: 20_000,
            height: 16,
            ..config()
        })
        .err()
        .unwrap();
        assert!(matches!(err, EncodeError::Init { .. }), "{err}");
        assert!(encoder.reconfigure(1_000_000, 0).is_err());
    }

    /// `cargo test -p airlock-streaming --release --lib encode::vp8 -- --ignored --nocapture`
    #[test]
    #[ignore = "timing, run in release"]
    fn time_1280x800() {
        crate::encode::testing::time_encoder("VP8", &mut Vp8Encoder::new(&config()).unwrap());
    }
}
