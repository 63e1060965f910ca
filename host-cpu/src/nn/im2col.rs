//! im2col and its adjoint col2im for k x k convolutions with zero padding k/2 and stride 1:
//! the input patches of one sample as the columns of a [cin k k, H W] matrix.

/// The im2col matrix of one sample `x` [cin, h, w] for a k x k kernel with zero padding k/2:
/// `col[(c k + ky) k + kx, y w + x] = x[c, y + ky - k/2, x + kx - k/2]` (0 outside), its rows
/// `ld` apart (ld >= h w; the rest of each row is left as it is).
pub(crate) fn im2col(
    x: &[f32],
    cin: usize,
    h: usize,
    w: usize,
    k: usize,
    col: &mut [f32],
    ld: usize,
) {
    let p = k / 2;
    let hw = h * w;
    for c in 0..cin {
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut col[((c * k + ky) * k + kx) * ld..][..hw];
                // Valid output columns: 0 <= ox + kx - p < w.
                let lo = p.saturating_sub(kx);
                let hi = (w + p).saturating_sub(kx).min(w);
                for oy in 0..h {
                    let dst = &mut row[oy * w..(oy + 1) * w];
                    let iy = oy as isize + ky as isize - p as isize;
                    if iy < 0 || iy >= h as isize || lo >= hi {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &x[c * hw + iy as usize * w..][..w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    dst[lo..hi].copy_from_slice(&src[lo + kx - p..hi + kx - p]);
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: `dx[c, iy, ix] += dcol[row, oy w + ox]` over every use, the
/// rows of `dcol` `ld` apart. `dx` is overwritten.
pub(crate) fn col2im(
    dcol: &[f32],
    cin: usize,
    h: usize,
    w: usize,
    k: usize,
    dx: &mut [f32],
    ld: usize,
) {
    let p = k / 2;
    let hw = h * w;
    dx.fill(0.0);
    for c in 0..cin {
        for ky in 0..k {
            for kx in 0..k {
                let row = &dcol[((c * k + ky) * k + kx) * ld..][..hw];
                let lo = p.saturating_sub(kx);
                let hi = (w + p).saturating_sub(kx).min(w);
                if lo >= hi {
                    continue;
                }
                for oy in 0..h {
                    let iy = oy as isize + ky as isize - p as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let dst = &mut dx[c * hw + iy as usize * w..][..w];
                    let src = &row[oy * w..(oy + 1) * w];
                    for (d, &s) in dst[lo + kx - p..hi + kx - p].iter_mut().zip(&src[lo..hi]) {
                        *d += s;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// im2col of a 1-channel 2x2 image for k = 3, written out by hand.
    #[test]
    fn im2col_by_hand() {
        // x = [[1, 2], [3, 4]]. Row (ky, kx) holds x[oy + ky - 1, ox + kx - 1] for the 4
        // outputs (0,0), (0,1), (1,0), (1,1).
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut col = [9.0f32; 36];
        im2col(&x, 1, 2, 2, 3, &mut col, 4);
        let want: [[f32; 4]; 9] = [
            [0.0, 0.0, 0.0, 1.0], // (-1,-1)
            [0.0, 0.0, 1.0, 2.0], // (-1, 0)
            [0.0, 0.0, 2.0, 0.0], // (-1,+1)
            [0.0, 1.0, 0.0, 3.0], // ( 0,-1)
            [1.0, 2.0, 3.0, 4.0], // ( 0, 0)
            [2.0, 0.0, 4.0, 0.0], // ( 0,+1)
            [0.0, 3.0, 0.0, 0.0], // (+1,-1)
            [3.0, 4.0, 0.0, 0.0], // (+1, 0)
            [4.0, 0.0, 0.0, 0.0], // (+1,+1)
        ];
        for (r, w) in want.iter().enumerate() {
            assert_eq!(&col[r * 4..r * 4 + 4], w, "row {r}");
        }
    }

    /// col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)> for any x, c.
    #[test]
    fn col2im_is_adjoint_of_im2col() {
        let (cin, h, w, k) = (2, 3, 4, 3);
        let x: Vec<f32> = (0..cin * h * w)
            .map(|i| ((i * 7) % 11) as f32 - 5.0)
            .collect();
        let c: Vec<f32> = (0..cin * k * k * h * w)
            .map(|i| ((i * 5) % 13) as f32 - 6.0)
            .collect();
        let mut col = vec![0.0; c.len()];
        im2col(&x, cin, h, w, k, &mut col, h * w);
        let mut dx = vec![0.0; x.len()];
        col2im(&c, cin, h, w, k, &mut dx, h * w);
        let lhs: f32 = col.iter().zip(&c).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
        // Integer-valued terms well inside f32's exact range: equality is exact.
        assert_eq!(lhs, rhs);
    }
}
