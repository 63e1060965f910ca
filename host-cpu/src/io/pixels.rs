//! The spec's pixel conventions (docs/ambient-unet-spec.md, "Data conventions"): a `u8` pixel
//! maps to `u8 / 127.5 - 1` in [-1, 1], and back by `clamp(round((x + 1) * 127.5), 0, 255)`.

/// `u8 / 127.5 - 1`.
#[inline]
pub fn u8_to_unit(u: u8) -> f32 {
    u as f32 / 127.5 - 1.0
}

/// `clamp(round((x + 1) * 127.5), 0, 255)`; callers reject NaN first (it would give 0).
#[inline]
pub fn unit_to_u8(x: f32) -> u8 {
    ((x + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_u8_survives_the_round_trip() {
        for u in 0..=255u8 {
            assert_eq!(unit_to_u8(u8_to_unit(u)), u);
        }
        assert_eq!(u8_to_unit(0), -1.0);
        assert_eq!(u8_to_unit(255), 1.0);
        // Out-of-range values clamp; 0 is mid-grey, (0 + 1) * 127.5 = 127.5 rounds away from 0.
        assert_eq!(unit_to_u8(-3.0), 0);
        assert_eq!(unit_to_u8(7.0), 255);
        assert_eq!(unit_to_u8(0.0), 128);
    }
}
