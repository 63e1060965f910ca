//! Outputs on cases small enough to work out by hand, with hand-set weights; every expected
//! value is written out from the spec's formulas in the comments, independently of the code.

use ambient_cpu::config::UNetConfig;
use ambient_cpu::denoiser::denoise;
use ambient_cpu::nn::concat::{concat_channels, split_channels};
use ambient_cpu::nn::embedding::NoiseEmbedding;
use ambient_cpu::nn::gated_conv::GatedConv;
use ambient_cpu::nn::group_norm::GroupNorm;
use ambient_cpu::nn::resample::{avg_pool_2x2, upsample_nearest_2x};
use ambient_cpu::nn::resblock::ResBlock;
use ambient_cpu::params::{spec_layout, ParamStore};
use ambient_cpu::unet::UNet;
use ndarray::{array, Array2, Array4};

type Layout = Vec<(String, Vec<usize>)>;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
fn silu(x: f64) -> f64 {
    x * sigmoid(x)
}

/// f32 results against f64 hand values: 1e-6 (about 16 ulps of f32) relative to
/// max(|value|, 1), as each value passes through at most about ten f32 operations, each
/// rounding by half an ulp.
fn close(got: f32, want: f64, what: &str) {
    let tol = 1e-6 * want.abs().max(1.0);
    assert!(
        (got as f64 - want).abs() <= tol,
        "{what}: {got} vs hand value {want}"
    );
}

fn set(p: &mut ParamStore, name: &str, v: &[f32]) {
    p.get_mut(name).unwrap().data.copy_from_slice(v);
}

fn conv_layout(p: &str, cin: usize, cout: usize, k: usize) -> Layout {
    vec![
        (format!("{p}.weight"), vec![cout, cin, k, k]),
        (format!("{p}.gate"), vec![cout, cin, k, k]),
        (format!("{p}.bias"), vec![cout]),
    ]
}

/// x = [[1,2,3],[4,5,6],[7,8,9]], W = all ones, G = 1 at the centre tap only, b = 0.5:
/// out(y, x) = (sum of the in-bounds 3x3 neighbourhood) * sigmoid(x(y, x)) + 0.5.
/// (0,0): 1+2+4+5 = 12, gate sigmoid(1); (0,1): 1+2+3+4+5+6 = 21, sigmoid(2);
/// (1,1): 45, sigmoid(5); (2,2): 5+6+8+9 = 28, sigmoid(9); (1,0): 1+2+4+5+7+8 = 27, sigmoid(4).
#[test]
fn gated_conv_3x3() {
    let layout = conv_layout("c", 1, 1, 3);
    let conv = GatedConv::new(&layout, "c", 1, 1, 3).unwrap();
    let mut p = ParamStore::zeros(&layout);
    set(&mut p, "c.weight", &[1.0; 9]);
    let mut g = [0.0f32; 9];
    g[4] = 1.0;
    set(&mut p, "c.gate", &g);
    set(&mut p, "c.bias", &[0.5]);
    let x = Array4::from_shape_vec((1, 1, 3, 3), (1..=9).map(|v| v as f32).collect()).unwrap();
    let out = conv.forward(&p, &x).0;
    for (y, xx, sum, centre) in [
        (0, 0, 12.0, 1.0),
        (0, 1, 21.0, 2.0),
        (1, 1, 45.0, 5.0),
        (2, 2, 28.0, 9.0),
        (1, 0, 27.0, 4.0),
    ] {
        close(
            out[[0, 0, y, xx]],
            sum * sigmoid(centre) + 0.5,
            &format!("({y},{xx})"),
        );
    }
}

/// 1x1 gated conv, 2 -> 1 channels: W = [2, -1], G = [0, 1], b = 0.1:
/// out = (2 a - b) sigmoid(b) + 0.1 per pixel (the bias outside the gate).
#[test]
fn gated_conv_1x1() {
    let layout = conv_layout("s", 2, 1, 1);
    let conv = GatedConv::new(&layout, "s", 2, 1, 1).unwrap();
    let mut p = ParamStore::zeros(&layout);
    set(&mut p, "s.weight", &[2.0, -1.0]);
    set(&mut p, "s.gate", &[0.0, 1.0]);
    set(&mut p, "s.bias", &[0.1]);
    let x = array![[[[0.5f32, -1.0]], [[2.0, 0.25]]]]; // a = [0.5, -1], b = [2, 0.25]
    let out = conv.forward(&p, &x).0;
    close(
        out[[0, 0, 0, 0]],
        (1.0 - 2.0) * sigmoid(2.0) + 0.1,
        "pixel 0",
    );
    close(
        out[[0, 0, 0, 1]],
        (-2.0 - 0.25) * sigmoid(0.25) + 0.1,
        "pixel 1",
    );
}

/// One group over 2 channels of 1x2 pixels: ch0 = [1, 3], ch1 = [5, 7]. Mean 4, biased
/// variance (9 + 1 + 1 + 9) / 4 = 5, r = 1/sqrt(5 + 1e-5); weight [2, 1], bias [0, -1]:
/// ch0 = 2 (-3 r), 2 (-1 r); ch1 = r - 1, 3 r - 1.
#[test]
fn group_norm() {
    let layout: Layout = vec![("g.weight".into(), vec![2]), ("g.bias".into(), vec![2])];
    let gn = GroupNorm::new(&layout, "g", 2, 1).unwrap();
    let mut p = ParamStore::zeros(&layout);
    set(&mut p, "g.weight", &[2.0, 1.0]);
    set(&mut p, "g.bias", &[0.0, -1.0]);
    let x = array![[[[1.0f32, 3.0]], [[5.0, 7.0]]]];
    let out = gn.forward(&p, &x).0;
    let r = 1.0 / (5.0f64 + 1e-5).sqrt();
    close(out[[0, 0, 0, 0]], -6.0 * r, "ch0[0]");
    close(out[[0, 0, 0, 1]], -2.0 * r, "ch0[1]");
    close(out[[0, 1, 0, 0]], r - 1.0, "ch1[0]");
    close(out[[0, 1, 0, 1]], 3.0 * r - 1.0, "ch1[1]");
}

/// ch = 4: half = 2, f = [1, 10000^(-1/2) = 0.01]; for c_noise = 2,
/// pos = [cos 2, cos 0.02, sin 2, sin 0.02]. fc1 copies pos[j % 4] to feature j (16
/// features), fc2 is the identity with bias 0.5: emb_j = SiLU(SiLU(pos[j % 4]) + 0.5).
#[test]
fn noise_embedding() {
    let layout: Layout = vec![
        ("emb.fc1.weight".into(), vec![16, 4]),
        ("emb.fc1.bias".into(), vec![16]),
        ("emb.fc2.weight".into(), vec![16, 16]),
        ("emb.fc2.bias".into(), vec![16]),
    ];
    let emb = NoiseEmbedding::new(&layout, 4).unwrap();
    let mut p = ParamStore::zeros(&layout);
    let mut w1 = vec![0.0f32; 64];
    for j in 0..16 {
        w1[j * 4 + j % 4] = 1.0;
    }
    set(&mut p, "emb.fc1.weight", &w1);
    let mut w2 = vec![0.0f32; 256];
    for j in 0..16 {
        w2[j * 16 + j] = 1.0;
    }
    set(&mut p, "emb.fc2.weight", &w2);
    set(&mut p, "emb.fc2.bias", &[0.5; 16]);
    let out = emb.forward(&p, &[2.0]).0;
    let pos = [2f64.cos(), 0.02f64.cos(), 2f64.sin(), 0.02f64.sin()];
    for j in 0..16 {
        close(
            out[[0, j]],
            silu(silu(pos[j % 4]) + 0.5),
            &format!("emb[{j}]"),
        );
    }
}

/// Pool: mean of [[1, 2], [3, 5]] = 2.75. Upsample: each pixel to a 2x2 block. Concat: the
/// decoder order [x, skip].
#[test]
fn pool_upsample_concat() {
    let x = array![[[[1.0f32, 2.0], [3.0, 5.0]]]];
    assert_eq!(avg_pool_2x2(&x), array![[[[2.75f32]]]]);
    let u = upsample_nearest_2x(&array![[[[1.0f32, 2.0]]]]);
    assert_eq!(u, array![[[[1.0f32, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]]]);
    let c = concat_channels(&array![[[[1.0f32]]]], &array![[[[2.0f32]], [[3.0]]]]);
    assert_eq!(c, array![[[[1.0f32]], [[2.0]], [[3.0]]]]);
}

/// Concat and split on a batch of 2 with 1x2 images: each image's channels stay with it, in
/// the order [a, b]; `b` is given transposed (not in standard layout) to check that the copy
/// follows logical, not memory, order; split gives back the two parts.
#[test]
fn concat_split_batch() {
    // a: 2 images x 1 channel x 1 x 2.
    let a = array![[[[1.0f32, 2.0]]], [[[3.0, 4.0]]]];
    // b: 2 images x 2 channels x 1 x 2, stored channel-major: the owned permutation of a
    // (channel, image, 1, 2) array, so b[n][c] = s[c][n] and b is not in standard layout.
    let s = array![
        [[[10.0f32, 20.0]], [[50.0, 60.0]]],
        [[[30.0, 40.0]], [[70.0, 80.0]]]
    ];
    let b = s.permuted_axes([1, 0, 2, 3]);
    assert!(!b.is_standard_layout());
    let c = concat_channels(&a, &b);
    let expected = array![
        [[[1.0f32, 2.0]], [[10.0, 20.0]], [[30.0, 40.0]]],
        [[[3.0, 4.0]], [[50.0, 60.0]], [[70.0, 80.0]]]
    ];
    assert_eq!(c, expected);
    let (da, db) = split_channels(&c, 1);
    assert_eq!(da, a);
    assert_eq!(db, b);
    let (d0, d3) = split_channels(&c, 3);
    assert_eq!((d0, d3.dim()), (c.clone(), (2, 0, 1, 2)));
}

/// ResBlock 2 -> 2 (identity skip), groups 1, on a 2x2 image with x = (1, -1) per channel
/// and emb = [1, 2]:
/// - norm1 (weight 1, bias 0): mean 0, variance 1: n1 = (r, -r), r = 1/sqrt(1 + 1e-5);
/// - conv1: only W[0,0] centre tap = 1, G = 0 (gate 1/2), bias (0, 0.3):
///   h = (SiLU(r) / 2, 0.3);
/// - emb_proj W = [[1, 0], [0, -1]], b = 0 adds (1, -2): h = (p, q) = (SiLU(r)/2 + 1, -1.7);
/// - norm2 (weight 1, bias 0) over the two constant channels: d = (p - q)/2,
///   n2 = (t, -t), t = d / sqrt(d^2 + 1e-5);
/// - conv2: only W[1, 0] = all 9 taps 1, G = 0, bias (0.1, 0): on a 2x2 image every tap
///   window holds all 4 pixels, so h2 = (0.1, 4 SiLU(t) / 2);
/// - out = (h2 + x) / sqrt(2) = ((0.1 + 1)/sqrt 2, (2 SiLU(t) - 1)/sqrt 2) at every pixel.
#[test]
fn resblock() {
    let mut layout: Layout = vec![
        ("b.norm1.weight".into(), vec![2]),
        ("b.norm1.bias".into(), vec![2]),
    ];
    layout.extend(conv_layout("b.conv1", 2, 2, 3));
    layout.push(("b.emb_proj.weight".into(), vec![2, 2]));
    layout.push(("b.emb_proj.bias".into(), vec![2]));
    layout.push(("b.norm2.weight".into(), vec![2]));
    layout.push(("b.norm2.bias".into(), vec![2]));
    layout.extend(conv_layout("b.conv2", 2, 2, 3));
    let block = ResBlock::new(&layout, "b", 2, 2, 1, 2).unwrap();
    let mut p = ParamStore::zeros(&layout);
    set(&mut p, "b.norm1.weight", &[1.0, 1.0]);
    set(&mut p, "b.norm2.weight", &[1.0, 1.0]);
    let mut w1 = vec![0.0f32; 36];
    w1[4] = 1.0; // [o=0, i=0, 1, 1]
    set(&mut p, "b.conv1.weight", &w1);
    set(&mut p, "b.conv1.bias", &[0.0, 0.3]);
    set(&mut p, "b.emb_proj.weight", &[1.0, 0.0, 0.0, -1.0]);
    let mut w2 = vec![0.0f32; 36];
    w2[18..27].fill(1.0); // [o=1, i=0, :, :]
    set(&mut p, "b.conv2.weight", &w2);
    set(&mut p, "b.conv2.bias", &[0.1, 0.0]);
    let x = Array4::from_shape_fn((1, 2, 2, 2), |(_, c, _, _)| if c == 0 { 1.0 } else { -1.0 });
    let e = Array2::from_shape_vec((1, 2), vec![1.0, 2.0]).unwrap();
    let out = block.forward(&p, &x, &e).0;
    let r = 1.0 / (1.0f64 + 1e-5).sqrt();
    let (pp, q) = (silu(r) / 2.0 + 1.0, -1.7);
    let d = (pp - q) / 2.0;
    let t = d / (d * d + 1e-5).sqrt();
    let s2 = std::f64::consts::SQRT_2;
    for y in 0..2 {
        for xx in 0..2 {
            close(out[[0, 0, y, xx]], 1.1 / s2, "ch0");
            close(out[[0, 1, y, xx]], (2.0 * silu(t) - 1.0) / s2, "ch1");
        }
    }
}

/// The whole network (C = 1, 4x4, ch 2, mult [1, 1], blocks 1, groups 1) with every weight 0
/// except out_norm.bias = (0.5, -1), out_conv.weight[0, 0] = all ones, out_conv.bias = 0.2.
/// Every layer before out_norm then outputs exactly 0 (zero weights and biases, GroupNorm of
/// a constant is its bias, skips of zeros), out_norm outputs its bias, and
/// F(y, x) = (number of in-bounds taps) * SiLU(0.5) * sigmoid(0) + 0.2: 4 at a corner, 6 on
/// an edge, 9 inside, whatever the input. The denoiser then gives
/// D = m (c_skip y + c_out F) + (1 - m) sd F with c_skip = sd^2/(s^2+sd^2),
/// c_out = s sd / sqrt(s^2 + sd^2).
#[test]
fn network_tail_and_preconditioning() {
    let cfg = UNetConfig {
        img_channels: 1,
        img_resolution: 4,
        ch: 2,
        mult: vec![1, 1],
        blocks: 1,
        groups: 1,
        sigma_data: 0.5,
    };
    let net = UNet::new(&cfg).unwrap();
    let mut p = ParamStore::zeros(&spec_layout(&cfg));
    set(&mut p, "out_norm.bias", &[0.5, -1.0]);
    let mut w = vec![0.0f32; 18];
    w[..9].fill(1.0);
    set(&mut p, "out_conv.weight", &w);
    set(&mut p, "out_conv.bias", &[0.2]);
    let y = Array4::from_shape_fn((2, 1, 4, 4), |(i, _, r, c)| {
        (i + r * 4 + c) as f32 * 0.1 - 0.7
    });
    let m = Array4::from_shape_fn((2, 1, 4, 4), |(i, _, r, c)| {
        ((i + r + c) % 3 != 0) as u8 as f32
    });
    let taps = |r: usize, c: usize| {
        let edge = |v: usize| if v == 0 || v == 3 { 2.0 } else { 3.0 };
        edge(r) * edge(c)
    };
    let f_hand = |r, c| taps(r, c) * silu(0.5) * 0.5 + 0.2;
    let mut f_in = Array4::<f32>::zeros((2, 2, 4, 4));
    f_in.slice_mut(ndarray::s![.., 0..1, .., ..]).assign(&y);
    let f = net.forward_inference(&p, &f_in, &[-1.0, 0.5]);
    let sigmas = [0.1f32, 2.0];
    let d = denoise(&net, &p, &y, &m, &sigmas);
    let sd = 0.5f64;
    for i in 0..2 {
        let s = sigmas[i] as f64;
        let c_skip = sd * sd / (s * s + sd * sd);
        let c_out = s * sd / (s * s + sd * sd).sqrt();
        for r in 0..4 {
            for c in 0..4 {
                let fh = f_hand(r, c);
                close(f[[i, 0, r, c]], fh, &format!("F[{i},{r},{c}]"));
                let (mv, yv) = (m[[i, 0, r, c]] as f64, y[[i, 0, r, c]] as f64);
                let want = mv * (c_skip * yv + c_out * fh) + (1.0 - mv) * sd * fh;
                close(d[[i, 0, r, c]], want, &format!("D[{i},{r},{c}]"));
            }
        }
    }
}
