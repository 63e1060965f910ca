//! Kernels on arbitrary parameters: random multipliers, shifts, biases and zero points over the
//! whole i32 range, and buffers of random (often wrong) lengths. Every call must return Ok or a
//! typed error; the test profile keeps overflow checks on, so any arithmetic overflow in a
//! kernel would panic here.

mod int8_common;

use ambient_core::int8::add::{add, AddParams};
use ambient_core::int8::conv::{Conv2d, ConvGeometry};
use ambient_core::int8::gated::GatedConv2d;
use ambient_core::int8::groupnorm::GroupNorm;
use ambient_core::int8::layout::Channels;
use ambient_core::int8::quant::QuantParams;
use ambient_core::int8::requant::Requant;
use ambient_core::int8::resample::{avg_pool_2x2, upsample_nearest_2x};
use ambient_core::AmbientRng;
use int8_common::random_i8;
use rand_core::RngCore;

fn any_i32(rng: &mut AmbientRng) -> i32 {
    match rng.below(4) {
        0 => [i32::MIN, i32::MAX, 0, -1, 1][rng.below(5) as usize],
        1 => rng.below(256) as i32 - 128,
        _ => rng.next_u32() as i32,
    }
}

/// A zero point: an int8 seven times in eight, otherwise any i32.
fn any_zp(rng: &mut AmbientRng) -> i32 {
    if rng.below(8) == 0 {
        any_i32(rng)
    } else {
        rng.below(256) as i32 - 128
    }
}

fn any_vec(rng: &mut AmbientRng, n: usize) -> Vec<i32> {
    (0..n).map(|_| any_i32(rng)).collect()
}

/// A length that is right three times in four, otherwise off by one either way.
fn len_near(rng: &mut AmbientRng, n: usize) -> usize {
    match rng.below(8) {
        0 => n + 1,
        1 => n.saturating_sub(1),
        _ => n,
    }
}

/// Random int8 data of a length near `n`.
fn i8s_near(rng: &mut AmbientRng, n: usize) -> Vec<i8> {
    let m = len_near(rng, n);
    random_i8(rng, m)
}

/// Random i32 parameters (full range) of a length near `n`.
fn i32s_near(rng: &mut AmbientRng, n: usize) -> Vec<i32> {
    let m = len_near(rng, n);
    any_vec(rng, m)
}

/// A zeroed buffer of a length near `n`.
fn zeros_near<T: Default + Clone>(rng: &mut AmbientRng, n: usize) -> Vec<T> {
    vec![T::default(); len_near(rng, n)]
}

#[test]
fn kernels_return_instead_of_panicking() {
    let mut rng = AmbientRng::new(99);
    let mut ran = [0usize; 6];
    let lut: [i8; 256] = core::array::from_fn(|i| (255 - i) as u8 as i8);
    for _ in 0..3000 {
        let g = ConvGeometry {
            height: 1 + rng.below(4) as usize,
            width: 1 + rng.below(4) as usize,
            in_channels: 1 + rng.below(4) as usize,
            out_channels: 1 + rng.below(3) as usize,
            kernel: [1, 3, 3, 2][rng.below(4) as usize],
        };
        let (cout, flen) = (g.out_channels, g.kernel * g.kernel * g.in_channels);
        let x = i8s_near(&mut rng, g.height * g.width * g.in_channels);
        let w = i8s_near(&mut rng, cout * flen);
        let gt = i8s_near(&mut rng, cout * flen);
        let (bias, m1, s1, m2, s2) = (
            i32s_near(&mut rng, cout),
            any_vec(&mut rng, cout),
            any_vec(&mut rng, cout),
            any_vec(&mut rng, cout),
            any_vec(&mut rng, cout),
        );
        let mut out = zeros_near::<i8>(&mut rng, g.height * g.width * cout);
        let conv = Conv2d {
            geometry: g,
            input_zero_point: any_zp(&mut rng),
            weights: &w,
            bias: &bias,
            multipliers: &m1,
            shifts: &s1,
            output_zero_point: any_zp(&mut rng),
        };
        ran[0] += conv.run(Channels::one(&x, g.in_channels), &mut out).is_ok() as usize;
        let gated = GatedConv2d {
            geometry: g,
            input_zero_point: any_zp(&mut rng),
            weights: &w,
            gates: &gt,
            main_multipliers: &m1,
            main_shifts: &s1,
            gate_multipliers: &m2,
            gate_shifts: &s2,
            gate_zero_point: any_zp(&mut rng),
            sigmoid: &lut,
            bias: &bias,
            output_multiplier: any_i32(&mut rng),
            output_shift: any_i32(&mut rng),
            output_zero_point: any_zp(&mut rng),
        };
        ran[1] += gated
            .run(Channels::one(&x, g.in_channels), &mut out)
            .is_ok() as usize;

        let p = AddParams {
            input1_offset: any_zp(&mut rng),
            input2_offset: any_zp(&mut rng),
            input1: Requant {
                multiplier: any_i32(&mut rng),
                shift: any_i32(&mut rng),
            },
            input2: Requant {
                multiplier: any_i32(&mut rng),
                shift: any_i32(&mut rng),
            },
            output: Requant {
                multiplier: any_i32(&mut rng),
                shift: any_i32(&mut rng),
            },
            output_offset: any_zp(&mut rng),
        };
        let _ = p.add_one(x.first().copied().unwrap_or(0), -128);
        let y = i8s_near(&mut rng, x.len());
        let mut sum = zeros_near::<i8>(&mut rng, x.len());
        ran[2] += add(&p, &x, &y, &mut sum).is_ok() as usize;

        let c = g.in_channels;
        let n_gamma = len_near(&mut rng, c);
        // Any bit pattern (NaN, infinities, subnormals) one time in four.
        let wild = rng.below(4) == 0;
        let gamma: Vec<f32> = (0..n_gamma)
            .map(|_| {
                if wild {
                    f32::from_bits(rng.next_u32())
                } else {
                    rng.uniform() * 4.0 - 2.0
                }
            })
            .collect();
        let gn = GroupNorm {
            height: g.height,
            width: g.width,
            channels: c,
            groups: 1 + rng.below(3) as usize,
            eps: [1e-5, 1e-5, 1e-5, 0.0, f32::NAN][rng.below(5) as usize],
            gamma: &gamma,
            beta: &gamma,
            input: QuantParams {
                scale: if wild {
                    f32::from_bits(rng.next_u32())
                } else {
                    0.02
                },
                zero_point: any_zp(&mut rng),
            },
            output: QuantParams {
                scale: [0.1, 0.0, 1e-30][rng.below(3) as usize],
                zero_point: any_zp(&mut rng),
            },
        };
        let mut scratch = zeros_near::<f32>(&mut rng, 2 * c);
        let mut gn_out = zeros_near::<i8>(&mut rng, x.len());
        ran[3] += gn
            .run(Channels::one(&x, c), &mut scratch, &mut gn_out)
            .is_ok() as usize;

        let mut pooled = zeros_near::<i8>(&mut rng, x.len() / 4);
        ran[4] += avg_pool_2x2(&x, g.height, g.width, c, &mut pooled).is_ok() as usize;
        let mut up = zeros_near::<i8>(&mut rng, x.len() * 4);
        ran[5] += upsample_nearest_2x(&x, g.height, g.width, c, &mut up).is_ok() as usize;
    }
    eprintln!("completed runs: {ran:?}");
    // Every kernel must have run to completion on many of these inputs, or the loop only
    // exercised the validation.
    for (kernel, &n) in ["conv", "gated", "add", "groupnorm", "pool", "upsample"]
        .iter()
        .zip(&ran)
    {
        assert!(n >= 50, "{kernel} ran {n} times");
    }
}
