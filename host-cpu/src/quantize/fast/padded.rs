//! A convolution's input as the fast kernels read it: `x - zp` (the input minus the conv's
//! input zero point) in i16, HWC, with a one-pixel border of zeros and each pixel's channels
//! padded to an even count (the AVX2 kernel multiplies channel pairs). A border tap then adds
//! exactly 0, as the core's convolution skips it (a padded tap holds `zp`), and every
//! kernel reads its taps without bounds tests. The buffer ends with [`TILE`] pixels of slack
//! so that a tile of pixels may run past a row's end (its extra results are discarded).

/// The most output pixels a kernel computes at once (the slack at the end of a map).
pub const TILE: usize = 4;

/// The shape of a padded map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaddedGeometry {
    pub height: usize,
    pub width: usize,
    /// Real channels.
    pub channels: usize,
    /// i16 per pixel: `channels` rounded up to even.
    pub stride: usize,
}

impl PaddedGeometry {
    pub fn new(height: usize, width: usize, channels: usize) -> Self {
        PaddedGeometry {
            height,
            width,
            channels,
            stride: channels.next_multiple_of(2),
        }
    }

    /// i16 of the whole buffer, slack included.
    pub fn len(&self) -> usize {
        ((self.height + 2) * (self.width + 2) + TILE) * self.stride
    }

    /// Never empty (every dimension is at least 1).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Offset of interior pixel `(y, x)`.
    #[inline]
    pub fn pixel(&self, y: usize, x: usize) -> usize {
        ((y + 1) * (self.width + 2) + x + 1) * self.stride
    }

    /// Zeroes the border pixels of `buf` (the interior and the slack are left as they are:
    /// the interior is written by the producer, the slack only feeds discarded results).
    pub fn clear_border(&self, buf: &mut [i16]) {
        let row = (self.width + 2) * self.stride;
        buf[..row].fill(0);
        buf[(self.height + 1) * row..(self.height + 2) * row].fill(0);
        for y in 1..=self.height {
            buf[y * row..y * row + self.stride].fill(0);
            buf[(y + 1) * row - self.stride..(y + 1) * row].fill(0);
        }
    }
}

/// `buf <- [a, b] - zp` for an int8 HWC map whose channels are `a`'s (`ca` per pixel) then
/// `b`'s (`cb`, 0 for a single buffer), border cleared.
pub fn fill_from_int8(
    g: &PaddedGeometry,
    a: &[i8],
    ca: usize,
    b: &[i8],
    cb: usize,
    zero_point: i32,
    buf: &mut [i16],
) {
    assert_eq!(ca + cb, g.channels);
    let pixels = g.height * g.width;
    assert!(a.len() == pixels * ca && b.len() == pixels * cb && buf.len() >= g.len());
    g.clear_border(buf);
    let zp = zero_point as i16;
    for y in 0..g.height {
        for x in 0..g.width {
            let p = y * g.width + x;
            let dst = &mut buf[g.pixel(y, x)..][..g.channels];
            let (da, db) = dst.split_at_mut(ca);
            for (d, &q) in da.iter_mut().zip(&a[p * ca..(p + 1) * ca]) {
                *d = q as i16 - zp;
            }
            for (d, &q) in db.iter_mut().zip(&b[p * cb..(p + 1) * cb]) {
                *d = q as i16 - zp;
            }
        }
    }
}
