//! BGRX → I420 conversion (BT.601, limited range) into a picture buffer reused between frames.
//!
//! The converter works on one pair of rows at a time: the luma of both rows, then the chroma of
//! their 2x2 blocks, while the rows are still in L1. All arithmetic fits in 16 bits and the loops
//! iterate over exact chunks, so there are no per-pixel bounds checks and LLVM vectorizes them;
//! on x86-64 an AVX2 build of the same code is picked at run time when the CPU has it.

/// Why a picture could not be stored or converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YuvError {
    /// I420 subsamples chroma 2x2, so both sides must be even (and nonzero).
    #[error(
        "a {width}x{height} picture cannot be stored as I420: width and height must be even and nonzero"
    )]
    Dimensions {
        /// Requested width.
        width: usize,
        /// Requested height.
        height: usize,
    },
    /// The BGRX buffer does not hold exactly one frame of the picture's size.
    #[error("got {got} bytes, a {width}x{height} BGRX frame needs {needed}")]
    FrameSize {
        /// Length of the buffer passed in.
        got: usize,
        /// `width * height * 4`.
        needed: usize,
        /// Picture width.
        width: usize,
        /// Picture height.
        height: usize,
    },
}

/// An I420 picture: the Y plane (`width * height` bytes), then U and V (`width/2 * height/2` each),
/// all without row padding. Allocated once and overwritten by every conversion.
#[derive(Debug, Clone)]
pub struct I420Buffer {
    data: Vec<u8>,
    width: usize,
    height: usize,
}

impl I420Buffer {
    /// Allocates a black picture. Both sides must be even and nonzero.
    pub fn new(width: usize, height: usize) -> Result<I420Buffer, YuvError> {
        if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(YuvError::Dimensions { width, height });
        }
        let luma = width * height;
        let mut data = vec![16u8; luma + luma / 2];
        data[luma..].fill(128);
        Ok(I420Buffer { data, width, height })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The Y plane, `width` bytes per row.
    pub fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }

    /// The U (Cb) plane, `width / 2` bytes per row.
    pub fn u(&self) -> &[u8] {
        let luma = self.width * self.height;
        &self.data[luma..luma + luma / 4]
    }

    /// The V (Cr) plane, `width / 2` bytes per row.
    pub fn v(&self) -> &[u8] {
        let luma = self.width * self.height;
        &self.data[luma + luma / 4..]
    }

    /// The three planes back to back (Y, U, V), the layout libvpx's `vpx_img_wrap` expects.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Length of the BGRX frame this picture is converted from: `width * height * 4`.
    pub fn bgrx_len(&self) -> usize {
        self.width * self.height * 4
    }

    fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let luma = self.width * self.height;
        let (y, chroma) = self.data.split_at_mut(luma);
        let (u, v) = chroma.split_at_mut(luma / 4);
        (y, u, v)
    }
}

/// Converts one BGRX frame (bytes B, G, R, X per pixel, rows top to bottom, no padding — the X11
/// ZPixmap layout at depth 24) into `out`, whose size gives the frame's size.
///
/// BT.601 limited range ("studio swing", Y 16..=235, U/V 16..=240), the colour space WebRTC
/// decoders assume for untagged H.264 and VP8. Each chroma sample is computed from the rounded
/// average of its 2x2 block. Takes about a millisecond for 1280x800 in an optimized build.
///
/// # Errors
///
/// [`YuvError::FrameSize`] when `bgrx` is not exactly `out.width() * out.height() * 4` bytes.
pub fn bgrx_to_i420(bgrx: &[u8], out: &mut I420Buffer) -> Result<(), YuvError> {
    let (width, height) = (out.width, out.height);
    let needed = width * height * 4;
    if bgrx.len() != needed {
        return Err(YuvError::FrameSize {
            got: bgrx.len(),
            needed,
            width,
            height,
        });
    }
    let (y, u, v) = out.planes_mut();

    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: `convert_avx2` only requires the AVX2 instructions, whose presence was checked
        // at run time just above; its slice arguments are ordinary safe Rust slices.
        unsafe { convert_avx2(bgrx, width, y, u, v) };
        return Ok(());
    }
    convert(bgrx, width, y, u, v);
    Ok(())
}

/// [`convert`] compiled with AVX2 enabled, so its loops use 256-bit vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn convert_avx2(bgrx: &[u8], width: usize, y: &mut [u8], u: &mut [u8], v: &mut [u8]) {
    convert(bgrx, width, y, u, v);
}

/// Converts whole row pairs. The caller guarantees the plane sizes match `width` and the height
/// implied by `bgrx`; any mismatch would only shorten the loops, never index out of bounds.
#[inline(always)]
fn convert(bgrx: &[u8], width: usize, y: &mut [u8], u: &mut [u8], v: &mut [u8]) {
    let row_bytes = width * 4;
    let chroma_width = width / 2;
    let rows = bgrx
        .chunks_exact(2 * row_bytes)
        .zip(y.chunks_exact_mut(2 * width))
        .zip(
            u.chunks_exact_mut(chroma_width)
                .zip(v.chunks_exact_mut(chroma_width)),
        );
    for ((src, luma), (u_row, v_row)) in rows {
        let (src0, src1) = src.split_at(row_bytes);
        let (luma0, luma1) = luma.split_at_mut(width);
        luma_row(src0, luma0);
        luma_row(src1, luma1);
        chroma_row(src0, src1, u_row, v_row);
    }
}

/// `Y = ((66 R + 129 G + 25 B + 128) >> 8) + 16`; the sum is at most 56 228, so it fits in u16.
#[inline(always)]
fn luma_row(src: &[u8], dst: &mut [u8]) {
    for (px, out) in src.chunks_exact(4).zip(dst.iter_mut()) {
        let (b, g, r) = (u16::from(px[0]), u16::from(px[1]), u16::from(px[2]));
        *out = ((66 * r + 129 * g + 25 * b + 128) >> 8) as u8 + 16;
    }
}

/// `U = ((-38 R - 74 G + 112 B + 128) >> 8) + 128`, `V = ((112 R - 94 G - 18 B + 128) >> 8) + 128`
/// on the 2x2 average; every intermediate lies within ±28 688, so it fits in i16.
#[inline(always)]
fn chroma_row(src0: &[u8], src1: &[u8], u_row: &mut [u8], v_row: &mut [u8]) {
    let blocks = src0.chunks_exact(8).zip(src1.chunks_exact(8));
    for ((a, b), (u, v)) in blocks.zip(u_row.iter_mut().zip(v_row.iter_mut())) {
        let avg = |i: usize| {
            let sum = u16::from(a[i]) + u16::from(a[i + 4]) + u16::from(b[i]) + u16::from(b[i + 4]);
            ((sum + 2) >> 2) as i16
        };
        let (bl, gr, rd) = (avg(0), avg(1), avg(2));
        *u = (((112 * bl - 38 * rd - 74 * gr + 128) >> 8) + 128) as u8;
        *v = (((112 * rd - 94 * gr - 18 * bl + 128) >> 8) + 128) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formulas in floating point, as a reference.
    fn reference(b: f64, g: f64, r: f64) -> (f64, f64, f64) {
        let y = 16.0 + (65.738 * r + 129.057 * g + 25.064 * b) / 256.0;
        let u = 128.0 + (-37.945 * r - 74.494 * g + 112.439 * b) / 256.0;
        let v = 128.0 + (112.439 * r - 94.154 * g - 18.285 * b) / 256.0;
        (y, u, v)
    }

    fn solid(width: usize, height: usize, bgrx: [u8; 4]) -> Vec<u8> {
        bgrx.iter().copied().cycle().take(width * height * 4).collect()
    }

    #[test]
    fn solid_colours_match_bt601_limited_range() {
        let colours = [
            [0, 0, 0, 0],
            [255, 255, 255, 0],
            [0, 0, 255, 0],
            [0, 255, 0, 0],
            [255, 0, 0, 0],
            [30, 144, 255, 0],
            [17, 200, 99, 255],
        ];
        let mut out = I420Buffer::new(6, 4).unwrap();
        for c in colours {
            bgrx_to_i420(&solid(6, 4, c), &mut out).unwrap();
            let (y, u, v) = reference(f64::from(c[0]), f64::from(c[1]), f64::from(c[2]));
            assert!(
                out.y().iter().all(|&p| (f64::from(p) - y).abs() <= 1.0),
                "Y for {c:?}"
            );
            assert!(
                out.u().iter().all(|&p| (f64::from(p) - u).abs() <= 1.0),
                "U for {c:?}"
            );
            assert!(
                out.v().iter().all(|&p| (f64::from(p) - v).abs() <= 1.0),
                "V for {c:?}"
            );
        }
        bgrx_to_i420(&solid(6, 4, [0, 0, 0, 0]), &mut out).unwrap();
        assert_eq!((out.y()[0], out.u()[0], out.v()[0]), (16, 128, 128));
        bgrx_to_i420(&solid(6, 4, [255, 255, 255, 0]), &mut out).unwrap();
        assert_eq!((out.y()[0], out.u()[0], out.v()[0]), (235, 128, 128));
    }

    #[test]
    fn layout_and_chroma_averaging() {
        // 4x2: left 2x2 block red, right block alternating black and white.
        let mut bgrx = vec![0u8; 4 * 2 * 4];
        for row in 0..2 {
            for col in 0..4 {
                let px = &mut bgrx[(row * 4 + col) * 4..][..4];
                match (col, (row + col) % 2) {
                    (0 | 1, _) => px.copy_from_slice(&[0, 0, 255, 0]),
                    (_, 0) => px.copy_from_slice(&[255, 255, 255, 0]),
                    _ => px.copy_from_slice(&[0, 0, 0, 0]),
                }
            }
        }
        let mut out = I420Buffer::new(4, 2).unwrap();
        bgrx_to_i420(&bgrx, &mut out).unwrap();
        assert_eq!(out.y(), &[82, 82, 235, 16, 82, 82, 16, 235]);
        assert_eq!(out.u(), &[90, 128]);
        assert_eq!(out.v(), &[240, 128]);
        assert_eq!(out.as_bytes().len(), 12);
    }

    #[test]
    fn wrong_buffer_size_is_an_error() {
        let mut out = I420Buffer::new(4, 2).unwrap();
        let err = bgrx_to_i420(&[0; 31], &mut out).unwrap_err();
        assert_eq!(err.to_string(), "got 31 bytes, a 4x2 BGRX frame needs 32");
    }

    #[test]
    fn odd_or_empty_sizes_are_refused() {
        for (w, h) in [(3, 2), (4, 3), (0, 2), (2, 0)] {
            assert_eq!(
                I420Buffer::new(w, h).unwrap_err(),
                YuvError::Dimensions { width: w, height: h }
            );
        }
    }

    #[test]
    fn portable_and_dispatched_paths_agree() {
        let (w, h) = (38, 6);
        let bgrx: Vec<u8> = (0..w * h * 4).map(|i| (i * 97 % 251) as u8).collect();
        let mut fast = I420Buffer::new(w, h).unwrap();
        bgrx_to_i420(&bgrx, &mut fast).unwrap();
        let mut portable = I420Buffer::new(w, h).unwrap();
        let (y, u, v) = portable.planes_mut();
        convert(&bgrx, w, y, u, v);
        assert_eq!(fast.as_bytes(), portable.as_bytes());
    }

    /// `cargo test -p airlock-streaming --release --lib encode::yuv -- --ignored --nocapture`
    #[test]
    #[ignore = "timing, run in release"]
    fn time_1280x800() {
        let (w, h) = (1280, 800);
        let bgrx: Vec<u8> = (0..w * h * 4).map(|i| (i * 7 % 253) as u8).collect();
        let mut out = I420Buffer::new(w, h).unwrap();
        let runs = 200;
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = std::time::Instant::now();
                bgrx_to_i420(std::hint::black_box(&bgrx), &mut out).unwrap();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let mean = times.iter().sum::<f64>() / f64::from(runs);
        println!(
            "bgrx_to_i420 1280x800: mean {mean:.3} ms, p50 {:.3} ms, min {:.3} ms",
            times[100], times[0]
        );
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = std::time::Instant::now();
                let (y, u, v) = out.planes_mut();
                convert(std::hint::black_box(&bgrx), w, y, u, v);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let mean = times.iter().sum::<f64>() / f64::from(runs);
        println!(
            "portable (no AVX2) path: mean {mean:.3} ms, p50 {:.3} ms, min {:.3} ms",
            times[100], times[0]
        );
    }
}
