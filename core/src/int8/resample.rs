//! The U-Net's resolution changes on int8 HWC maps, in the input's own quantization (TFLite
//! requires the output of both to share it): 2x2 average pooling rounded half away from zero
//! as TFLM's reference does (`(sum +- 2) / 4`, truncating), and 2x nearest upsampling, a copy.
//! Neither needs scratch.

use super::layout::feature_len;
use super::quant::check_len;
use crate::error::CoreError;

/// `out[y][x][c] = round(mean of in[2y..2y+2][2x..2x+2][c])`; `h`, `w` even; `out` is
/// `h/2 * w/2 * c`.
pub fn avg_pool_2x2(
    input: &[i8],
    h: usize,
    w: usize,
    c: usize,
    out: &mut [i8],
) -> Result<(), CoreError> {
    let n = feature_len(h, w, c)?;
    if h & 1 != 0 || w & 1 != 0 {
        return Err(CoreError::InvalidParameter(
            "average pooling needs even height and width",
        ));
    }
    check_len("pool input", n, input.len())?;
    check_len("pool output", n / 4, out.len())?;
    let (oh, ow) = (h / 2, w / 2);
    for oy in 0..oh {
        for ox in 0..ow {
            for ch in 0..c {
                let at = |y: usize, x: usize| input[(y * w + x) * c + ch] as i32;
                let (y, x) = (2 * oy, 2 * ox);
                let sum = at(y, x) + at(y, x + 1) + at(y + 1, x) + at(y + 1, x + 1);
                let rounded = if sum > 0 {
                    (sum + 2) / 4
                } else {
                    (sum - 2) / 4
                };
                out[(oy * ow + ox) * c + ch] = rounded as i8;
            }
        }
    }
    Ok(())
}

/// `out[y][x][c] = in[y/2][x/2][c]`; `out` is `2h * 2w * c`.
pub fn upsample_nearest_2x(
    input: &[i8],
    h: usize,
    w: usize,
    c: usize,
    out: &mut [i8],
) -> Result<(), CoreError> {
    let n = feature_len(h, w, c)?;
    feature_len(2 * h, 2 * w, c)?;
    check_len("upsample input", n, input.len())?;
    check_len("upsample output", 4 * n, out.len())?;
    let ow = 2 * w;
    for y in 0..2 * h {
        for x in 0..ow {
            let src = ((y / 2) * w + x / 2) * c;
            out[(y * ow + x) * c..][..c].copy_from_slice(&input[src..src + c]);
        }
    }
    Ok(())
}
