//! Still images of a screen: thumbnails and changed regions, as lossless WebP or PNG.
//!
//! Downscaling is an area average (box filter) computed straight from the BGRX mirror buffer; images are
//! never scaled up. Pure CPU work: no I/O.
//!
//! ```
//! use airlock_streaming::still::thumbnail;
//! use airlock_streaming::wire::StillFormat;
//! let screen = vec![0u8; 64 * 40 * 4];
//! let png = thumbnail(&screen, 64, 40, 16, 16, StillFormat::Png).unwrap();
//! assert!(png.starts_with(b"\x89PNG"));
//! ```

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder};

pub use crate::wire::StillFormat;
use crate::Rect;

/// Why a still could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StillError {
    /// The pixel buffer does not hold a `width` x `height` BGRX image.
    #[error("the pixel buffer holds {got} bytes, a {width}x{height} BGRX screen needs {want}")]
    BufferSize {
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        want: usize,
        /// Screen width.
        width: u16,
        /// Screen height.
        height: u16,
    },
    /// The requested region has no pixels.
    #[error("the region {x},{y} {width}x{height} is empty")]
    EmptyRegion {
        /// Left.
        x: u16,
        /// Top.
        y: u16,
        /// Width.
        width: u16,
        /// Height.
        height: u16,
    },
    /// The requested region starts outside the screen.
    #[error("the region {x},{y} {width}x{height} lies outside the {screen_w}x{screen_h} screen")]
    OutsideScreen {
        /// Left.
        x: u16,
        /// Top.
        y: u16,
        /// Width.
        width: u16,
        /// Height.
        height: u16,
        /// Screen width.
        screen_w: u16,
        /// Screen height.
        screen_h: u16,
    },
    /// The largest allowed image size is zero.
    #[error("a still cannot fit in {max_w}x{max_h} pixels")]
    ZeroLimit {
        /// Largest width.
        max_w: u16,
        /// Largest height.
        max_h: u16,
    },
    /// The work could not be carried out (for example, the task running it failed).
    #[error("{0}")]
    Internal(String),
    /// The image encoder failed.
    #[error("encoding the {} image failed: {source}", format.mime())]
    Encode {
        /// The format.
        format: StillFormat,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
}

/// A picture of the whole screen, at most `max_w` x `max_h`, aspect ratio kept, never scaled up.
pub fn thumbnail(
    bgrx: &[u8],
    width: u16,
    height: u16,
    max_w: u16,
    max_h: u16,
    format: StillFormat,
) -> Result<Vec<u8>, StillError> {
    region(
        bgrx,
        width,
        height,
        Rect::screen(width, height),
        max_w,
        max_h,
        format,
    )
    .map(|(image, _)| image)
}

/// A picture of `rect` (cut to the screen), at native resolution if it fits in `max_w` x `max_h`, else
/// scaled down keeping its aspect ratio. Returns the image and the screen rectangle it shows.
pub fn region(
    bgrx: &[u8],
    width: u16,
    height: u16,
    rect: Rect,
    max_w: u16,
    max_h: u16,
    format: StillFormat,
) -> Result<(Vec<u8>, Rect), StillError> {
    let want = usize::from(width) * usize::from(height) * 4;
    if bgrx.len() != want {
        return Err(StillError::BufferSize {
            got: bgrx.len(),
            want,
            width,
            height,
        });
    }
    if max_w == 0 || max_h == 0 {
        return Err(StillError::ZeroLimit { max_w, max_h });
    }
    let rect = clamp(rect, width, height)?;
    let (out_w, out_h) = scaled_size(rect.width, rect.height, max_w, max_h);
    let rgb = if (out_w, out_h) == (rect.width, rect.height) {
        crop_rgb(bgrx, width, rect)
    } else {
        box_scale_rgb(bgrx, width, rect, out_w, out_h)
    };
    Ok((encode(&rgb, out_w, out_h, format)?, rect))
}

/// `rect` grown by `margin` pixels on every side, cut to the screen.
pub fn expand(rect: Rect, margin: u16, screen_w: u16, screen_h: u16) -> Rect {
    let x0 = rect.x.saturating_sub(margin).min(screen_w);
    let y0 = rect.y.saturating_sub(margin).min(screen_h);
    let x1 = (u32::from(rect.x) + u32::from(rect.width) + u32::from(margin)).min(u32::from(screen_w));
    let y1 = (u32::from(rect.y) + u32::from(rect.height) + u32::from(margin)).min(u32::from(screen_h));
    Rect {
        x: x0,
        y: y0,
        width: u16::try_from(x1.saturating_sub(u32::from(x0))).unwrap_or(u16::MAX),
        height: u16::try_from(y1.saturating_sub(u32::from(y0))).unwrap_or(u16::MAX),
    }
}

/// The size of a `src_w` x `src_h` picture fitted into `max_w` x `max_h`: aspect ratio kept (rounded),
/// never larger than the source, at least 1x1 for a non-empty source and limit.
pub fn scaled_size(src_w: u16, src_h: u16, max_w: u16, max_h: u16) -> (u16, u16) {
    if src_w == 0 || src_h == 0 || max_w == 0 || max_h == 0 {
        return (0, 0);
    }
    if src_w <= max_w && src_h <= max_h {
        return (src_w, src_h);
    }
    let (sw, sh, mw, mh) = (
        u64::from(src_w),
        u64::from(src_h),
        u64::from(max_w),
        u64::from(max_h),
    );
    // Rounded quotients: both are at most the limit and the source size (see the branch conditions).
    let narrow = |n: u64, d: u64| u16::try_from(((n + d / 2) / d).max(1)).unwrap_or(u16::MAX);
    if sw * mh >= sh * mw {
        (max_w, narrow(sh * mw, sw))
    } else {
        (narrow(sw * mh, sh), max_h)
    }
}

fn clamp(rect: Rect, width: u16, height: u16) -> Result<Rect, StillError> {
    if rect.width == 0 || rect.height == 0 {
        return Err(StillError::EmptyRegion {
            x: rect.x,
            y: rect.y,
            width: rect.width,
            height: rect.height,
        });
    }
    if rect.x >= width || rect.y >= height {
        return Err(StillError::OutsideScreen {
            x: rect.x,
            y: rect.y,
            width: rect.width,
            height: rect.height,
            screen_w: width,
            screen_h: height,
        });
    }
    Ok(Rect {
        x: rect.x,
        y: rect.y,
        width: rect.width.min(width - rect.x),
        height: rect.height.min(height - rect.y),
    })
}

/// `rect` of the screen as RGB rows, at native size.
fn crop_rgb(bgrx: &[u8], width: u16, rect: Rect) -> Vec<u8> {
    let stride = usize::from(width) * 4;
    let (x0, x1) = (
        usize::from(rect.x) * 4,
        (usize::from(rect.x) + usize::from(rect.width)) * 4,
    );
    let mut out = Vec::with_capacity(rect.area() as usize * 3);
    for y in usize::from(rect.y)..usize::from(rect.y) + usize::from(rect.height) {
        let row = &bgrx[y * stride + x0..y * stride + x1];
        for px in row.chunks_exact(4) {
            out.extend_from_slice(&[px[2], px[1], px[0]]);
        }
    }
    out
}

/// `rect` of the screen scaled down to `out_w` x `out_h` RGB by averaging the source pixels of each box.
///
/// Box edges fall on whole source pixels: output pixel `i` covers source columns
/// `i * w / out_w .. (i + 1) * w / out_w`, never an empty range since `out_w <= w`.
fn box_scale_rgb(bgrx: &[u8], width: u16, rect: Rect, out_w: u16, out_h: u16) -> Vec<u8> {
    let stride = usize::from(width) * 4;
    let (sw, sh) = (usize::from(rect.width), usize::from(rect.height));
    let (ow, oh) = (usize::from(out_w), usize::from(out_h));
    let cols: Vec<usize> = (0..=ow).map(|i| usize::from(rect.x) + i * sw / ow).collect();
    let mut sums = vec![0u64; ow * 3];
    let mut out = Vec::with_capacity(ow * oh * 3);
    for oy in 0..oh {
        let y0 = usize::from(rect.y) + oy * sh / oh;
        let y1 = usize::from(rect.y) + (oy + 1) * sh / oh;
        sums.fill(0);
        for y in y0..y1 {
            let row = &bgrx[y * stride..(y + 1) * stride];
            for (edges, sum) in cols.windows(2).zip(sums.chunks_exact_mut(3)) {
                // One row of one box: at most 65535 pixels of 255, well inside u32.
                let (mut r, mut g, mut b) = (0u32, 0u32, 0u32);
                for px in row[edges[0] * 4..edges[1] * 4].chunks_exact(4) {
                    b += u32::from(px[0]);
                    g += u32::from(px[1]);
                    r += u32::from(px[2]);
                }
                sum[0] += u64::from(r);
                sum[1] += u64::from(g);
                sum[2] += u64::from(b);
            }
        }
        let rows = (y1 - y0) as u64;
        for (edges, sum) in cols.windows(2).zip(sums.chunks_exact(3)) {
            let count = (edges[1] - edges[0]) as u64 * rows;
            for channel in sum {
                out.push(((channel + count / 2) / count) as u8);
            }
        }
    }
    out
}

fn encode(rgb: &[u8], width: u16, height: u16, format: StillFormat) -> Result<Vec<u8>, StillError> {
    let mut out = Vec::new();
    let (w, h) = (u32::from(width), u32::from(height));
    let result = match format {
        StillFormat::Webp => WebPEncoder::new_lossless(&mut out).encode(rgb, w, h, ExtendedColorType::Rgb8),
        StillFormat::Png => PngEncoder::new_with_quality(
            &mut out,
            CompressionType::Fast,
            FilterType::Adaptive,
        )
        .write_image(rgb, w, h, ExtendedColorType::Rgb8),
    };
    result.map_err(|source| StillError::Encode { format, source })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use image::{ImageFormat, RgbImage};

    use super::*;

    /// A screen whose pixel (x, y) has red = x, green = y, blue = 200 (x and y below 256).
    fn gradient(width: u16, height: u16) -> Vec<u8> {
        let mut bgrx = Vec::new();
        for y in 0..height {
            for x in 0..width {
                bgrx.extend_from_slice(&[200, y as u8, x as u8, 0]);
            }
        }
        bgrx
    }

    fn decode(bytes: &[u8], format: StillFormat) -> RgbImage {
        let f = match format {
            StillFormat::Webp => ImageFormat::WebP,
            StillFormat::Png => ImageFormat::Png,
        };
        image::load_from_memory_with_format(bytes, f)
            .expect("decodes")
            .to_rgb8()
    }

    #[test]
    fn thumbnail_keeps_colours_and_aspect_ratio() {
        // Left half red, right half blue (BGRX order in the buffer).
        let (w, h) = (64u16, 40u16);
        let mut bgrx = Vec::new();
        for _ in 0..h {
            for x in 0..w {
                bgrx.extend_from_slice(if x < 32 { &[0, 0, 255, 0] } else { &[255, 0, 0, 0] });
            }
        }
        for format in [StillFormat::Webp, StillFormat::Png] {
            let bytes = thumbnail(&bgrx, w, h, 16, 16, format).expect("thumbnail");
            let img = decode(&bytes, format);
            assert_eq!(img.dimensions(), (16, 10), "{format:?}");
            assert_eq!(img.get_pixel(0, 0).0, [255, 0, 0]);
            assert_eq!(img.get_pixel(7, 9).0, [255, 0, 0]);
            assert_eq!(img.get_pixel(8, 0).0, [0, 0, 255]);
            assert_eq!(img.get_pixel(15, 9).0, [0, 0, 255]);
        }
    }

    #[test]
    fn thumbnail_averages_boxes() {
        // A 4x2 checkerboard of black and white, scaled to 2x1: every box averages to grey.
        let mut bgrx = Vec::new();
        for y in 0..2u16 {
            for x in 0..4u16 {
                let v = if (x + y) % 2 == 0 { 0 } else { 255 };
                bgrx.extend_from_slice(&[v, v, v, 0]);
            }
        }
        let img = decode(
            &thumbnail(&bgrx, 4, 2, 2, 2, StillFormat::Png).expect("thumbnail"),
            StillFormat::Png,
        );
        assert_eq!(img.dimensions(), (2, 1));
        assert_eq!(img.get_pixel(0, 0).0, [128, 128, 128]);
        assert_eq!(img.get_pixel(1, 0).0, [128, 128, 128]);
        // Gradient 10x10 to 5x5: pixel (i, j) averages columns 2i, 2i+1 and rows 2j, 2j+1.
        let img = decode(
            &thumbnail(&gradient(10, 10), 10, 10, 5, 5, StillFormat::Webp).expect("thumbnail"),
            StillFormat::Webp,
        );
        assert_eq!(img.get_pixel(0, 0).0, [1, 1, 200]); // (0+1)/2 = 0.5 rounds to 1.
        assert_eq!(img.get_pixel(3, 1).0, [7, 3, 200]); // (6+7)/2 = 6.5, (2+3)/2 = 2.5: rounded up.
    }

    #[test]
    fn thumbnail_never_scales_up() {
        let img = decode(
            &thumbnail(&gradient(30, 20), 30, 20, 320, 200, StillFormat::Png).expect("thumbnail"),
            StillFormat::Png,
        );
        assert_eq!(img.dimensions(), (30, 20));
        assert_eq!(img.get_pixel(29, 19).0, [29, 19, 200]);
    }

    #[test]
    fn scaled_sizes() {
        assert_eq!(scaled_size(1280, 800, 320, 200), (320, 200));
        assert_eq!(scaled_size(1280, 800, 320, 320), (320, 200));
        assert_eq!(scaled_size(1280, 800, 1000, 200), (320, 200));
        assert_eq!(scaled_size(1920, 1080, 320, 240), (320, 180));
        assert_eq!(scaled_size(100, 10, 10, 10), (10, 1));
        assert_eq!(scaled_size(1000, 1, 10, 10), (10, 1));
        assert_eq!(scaled_size(1, 1000, 10, 10), (1, 10));
        assert_eq!(scaled_size(65535, 65535, 1, 1), (1, 1));
        assert_eq!(scaled_size(5, 5, 10, 10), (5, 5));
        assert_eq!(scaled_size(0, 5, 10, 10), (0, 0));
    }

    #[test]
    fn region_crops_at_native_size() {
        let (w, h) = (64u16, 48u16);
        let screen = gradient(w, h);
        let rect = Rect {
            x: 10,
            y: 20,
            width: 8,
            height: 4,
        };
        for format in [StillFormat::Webp, StillFormat::Png] {
            let (bytes, shown) = region(&screen, w, h, rect, 100, 100, format).expect("region");
            assert_eq!(shown, rect);
            let img = decode(&bytes, format);
            assert_eq!(img.dimensions(), (8, 4));
            assert_eq!(img.get_pixel(0, 0).0, [10, 20, 200]);
            assert_eq!(img.get_pixel(7, 3).0, [17, 23, 200]);
        }
    }

    #[test]
    fn region_is_cut_to_the_screen_and_scaled() {
        let (w, h) = (64u16, 48u16);
        let screen = gradient(w, h);
        let past_edge = Rect {
            x: 60,
            y: 40,
            width: 100,
            height: 100,
        };
        let (bytes, shown) = region(&screen, w, h, past_edge, 100, 100, StillFormat::Png).expect("cut");
        assert_eq!(
            shown,
            Rect {
                x: 60,
                y: 40,
                width: 4,
                height: 8
            }
        );
        let img = decode(&bytes, StillFormat::Png);
        assert_eq!(img.dimensions(), (4, 8));
        assert_eq!(img.get_pixel(3, 7).0, [63, 47, 200]);
        // A 40x20 region into 10x10: scaled to 10x5, each box 4x4.
        let rect = Rect {
            x: 8,
            y: 4,
            width: 40,
            height: 20,
        };
        let (bytes, shown) = region(&screen, w, h, rect, 10, 10, StillFormat::Webp).expect("scaled");
        assert_eq!(shown, rect);
        let img = decode(&bytes, StillFormat::Webp);
        assert_eq!(img.dimensions(), (10, 5));
        // Box (0, 0): columns 8..12 (mean 9.5), rows 4..8 (mean 5.5).
        assert_eq!(img.get_pixel(0, 0).0, [10, 6, 200]);
        // Box (9, 4): columns 44..48 (mean 45.5), rows 20..24 (mean 21.5).
        assert_eq!(img.get_pixel(9, 4).0, [46, 22, 200]);
    }

    #[test]
    fn errors() {
        let screen = gradient(8, 8);
        let r = |x, y, width, height| Rect { x, y, width, height };
        assert!(matches!(
            thumbnail(&screen[1..], 8, 8, 4, 4, StillFormat::Png),
            Err(StillError::BufferSize {
                want: 256,
                got: 255,
                ..
            })
        ));
        assert!(matches!(
            thumbnail(&screen, 8, 8, 0, 4, StillFormat::Png),
            Err(StillError::ZeroLimit { .. })
        ));
        assert!(matches!(
            thumbnail(&[], 0, 0, 4, 4, StillFormat::Png),
            Err(StillError::EmptyRegion { .. })
        ));
        assert!(matches!(
            region(&screen, 8, 8, r(1, 1, 0, 3), 4, 4, StillFormat::Png),
            Err(StillError::EmptyRegion { .. })
        ));
        let e = region(&screen, 8, 8, r(8, 0, 3, 3), 4, 4, StillFormat::Png).expect_err("outside");
        assert_eq!(e.to_string(), "the region 8,0 3x3 lies outside the 8x8 screen");
        assert!(matches!(
            region(&screen, 8, 8, r(0, 9, 3, 3), 4, 4, StillFormat::Webp),
            Err(StillError::OutsideScreen { .. })
        ));
    }

    #[test]
    fn expand_adds_context_within_the_screen() {
        let r = |x, y, width, height| Rect { x, y, width, height };
        assert_eq!(expand(r(10, 10, 5, 5), 4, 100, 100), r(6, 6, 13, 13));
        assert_eq!(expand(r(1, 2, 5, 5), 4, 100, 100), r(0, 0, 10, 11));
        assert_eq!(expand(r(95, 90, 5, 10), 4, 100, 100), r(91, 86, 9, 14));
        assert_eq!(expand(r(0, 0, 100, 100), 8, 100, 100), r(0, 0, 100, 100));
        assert_eq!(
            expand(r(65000, 65000, 535, 535), u16::MAX, u16::MAX, u16::MAX),
            r(0, 0, u16::MAX, u16::MAX)
        );
    }

    #[test]
    fn large_screen_thumbnail() {
        let (w, h) = (1280u16, 800u16);
        let screen = vec![0x40u8; usize::from(w) * usize::from(h) * 4];
        let start = std::time::Instant::now();
        let bytes = thumbnail(&screen, w, h, 320, 200, StillFormat::Webp).expect("thumbnail");
        eprintln!("1280x800 -> 320x200 WebP thumbnail took {:?}", start.elapsed());
        let img = decode(&bytes, StillFormat::Webp);
        assert_eq!(img.dimensions(), (320, 200));
        assert_eq!(img.get_pixel(100, 100).0, [0x40, 0x40, 0x40]);
    }
}
