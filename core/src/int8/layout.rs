//! HWC activations as the kernels read them: a [`Channels`] view whose channels come from one
//! buffer or from two (a channel concatenation `[a, b]` that is never materialised, so the
//! decoder's `concat[x, skip]` costs no RAM), and the checked size arithmetic of a feature map.

use super::quant::check_len;
use crate::error::CoreError;

/// The largest feature-map dimension or channel count the kernels accept; it keeps every
/// product of sizes far from overflowing `usize` on a 32-bit target.
pub const MAX_DIM: usize = 1 << 15;

/// `h * w * c`, checked: every dimension in `[1, MAX_DIM]` and the product below `2^31`.
pub fn feature_len(h: usize, w: usize, c: usize) -> Result<usize, CoreError> {
    for d in [h, w, c] {
        if d == 0 || d > MAX_DIM {
            return Err(CoreError::InvalidParameter(
                "feature map dimension must be in [1, 2^15]",
            ));
        }
    }
    h.checked_mul(w)
        .and_then(|p| p.checked_mul(c))
        .filter(|&n| n < 1 << 31)
        .ok_or(CoreError::InvalidParameter("feature map too large"))
}

/// One HWC image whose channels are `first`'s followed by `second`'s, pixel by pixel. Both
/// parts share one quantization (the host gives a concatenation's operands the same
/// parameters, as TFLite's converter does for CONCATENATION).
#[derive(Debug, Clone, Copy)]
pub struct Channels<'a> {
    first: &'a [i8],
    first_channels: usize,
    second: &'a [i8],
    second_channels: usize,
}

impl<'a> Channels<'a> {
    /// A plain HWC buffer of `channels` channels.
    pub fn one(data: &'a [i8], channels: usize) -> Self {
        Channels {
            first: data,
            first_channels: channels,
            second: &[],
            second_channels: 0,
        }
    }

    /// The concatenation `[a, b]` along channels of two HWC buffers with the same pixels.
    pub fn concat(a: &'a [i8], a_channels: usize, b: &'a [i8], b_channels: usize) -> Self {
        Channels {
            first: a,
            first_channels: a_channels,
            second: b,
            second_channels: b_channels,
        }
    }

    /// Total channel count.
    pub fn channels(&self) -> usize {
        self.first_channels + self.second_channels
    }

    /// The channels of the first part (all of them for [`Channels::one`]).
    pub fn first_channels(&self) -> usize {
        self.first_channels
    }

    /// Checks that the view holds `pixels` pixels of `channels` channels.
    pub fn check(&self, pixels: usize, channels: usize) -> Result<(), CoreError> {
        check_len("input channels", channels, self.channels())?;
        if self.first_channels == 0 {
            return Err(CoreError::InvalidParameter(
                "first channel part must be non-empty",
            ));
        }
        check_len("input", pixels * self.first_channels, self.first.len())?;
        check_len(
            "second input",
            pixels * self.second_channels,
            self.second.len(),
        )
    }

    /// The two channel slices of pixel `p` (the second empty for a single buffer); the
    /// kernels call it only after [`Channels::check`].
    #[inline]
    pub(crate) fn pixel(&self, p: usize) -> (&'a [i8], &'a [i8]) {
        let a = &self.first[p * self.first_channels..(p + 1) * self.first_channels];
        let b = &self.second[p * self.second_channels..(p + 1) * self.second_channels];
        (a, b)
    }
}
