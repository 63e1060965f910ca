//! Every `CudaOps` kernel against `RefOps` on random data with ragged sizes (no dimension a
//! multiple of the SGEMM's 64 x 64 x 16 tiles or of a block), offsets and strides. Skips
//! ("no CUDA device") where there is no GPU.
//!
//! Tolerances, per kernel:
//! - Bit for bit: every kernel whose arithmetic RefOps writes in the same order with the same
//!   roundings (no FMA contraction: --fmad=false; IEEE division and square root; subnormals
//!   kept): the plain SGEMM (fused multiply-adds in k order on both sides), im2col, col2im,
//!   pooling, upsampling, copies, bias additions, the f64 sums (same order), preconditioning,
//!   the loss residual and Adam.
//! - The batch-summing SGEMM splits the batch into partial sums (cuda_ops.rs): each order of
//!   summing the K' = batch k products has an error at most K' u sum |a||b| (Higham eq. 3.5,
//!   u = 2^-24), so the two results differ elementwise by at most 2 K' u sum_kb |a_ik||b_kj|,
//!   which is checked with that sum computed by RefOps on |A| and |B|.
//! - Kernels with a sigmoid (gated epilogue, GroupNorm+SiLU, SiLU): CUDA's expf is within
//!   2 ulp and Rust's (libm) within 1, so a sigmoid differs by at most ~4 u relative and the
//!   formulas around it by a few u more; normwise relative 2e-6 (~30 u) bounds that with room
//!   and is still far below what any indexing mistake gives (order 1). GroupNorm's f64
//!   statistics summed in another order round to the same f32 but for rare ties, covered by
//!   the same bound.
#![cfg(feature = "cuda")]

mod common;

use ambient_core::AmbientRng;
use ambient_cuda::cuda_ops::{CudaOps, GEMM_TILES};
use ambient_cuda::ops::{AdamStep, Gemm, Ops, SampleCoefs};
use ambient_cuda::ptx_cache::PtxCache;
use ambient_cuda::ref_ops::RefOps;
use common::gpu_or_skip;

fn cuda_or_skip(test: &str) -> Option<CudaOps> {
    let gpu = gpu_or_skip(test)?;
    Some(CudaOps::new(gpu, &PtxCache::default_location()).unwrap())
}

fn random(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut rng = AmbientRng::new(seed);
    (0..n).map(|_| scale * rng.normal()).collect()
}

fn mask(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = AmbientRng::new(seed);
    (0..n).map(|_| rng.bernoulli(0.6) as u8 as f32).collect()
}

fn bits_equal(what: &str, got: &[Vec<f32>], want: &[Vec<f32>]) {
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: output {k} length");
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{what}: output {k} element {i}: cuda {a} ref {b}"
            );
        }
    }
    println!("{what}: equal bit for bit");
}

fn normwise(what: &str, got: &[Vec<f32>], want: &[Vec<f32>], tol: f64) {
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let num: f64 = g
            .iter()
            .zip(w)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum();
        let den: f64 = w.iter().map(|&b| (b as f64).powi(2)).sum();
        let e = (num / den.max(f64::MIN_POSITIVE)).sqrt();
        println!("{what}: output {k}: relative error {e:.2e}");
        assert!(
            e <= tol,
            "{what}: output {k}: relative error {e:e} > {tol:e}"
        );
    }
}

/// Runs `$body` (generic over the primitives `$o`, returning the outputs' values) on RefOps
/// and on CudaOps, and compares with `$cmp`.
macro_rules! compare {
    ($cuda:expr, $what:expr, $cmp:expr, |$o:ident| $body:block) => {{
        fn run<O: Ops>($o: &O) -> Vec<Vec<f32>> $body
        let want = run(&RefOps);
        let got = run($cuda);
        $cmp($what, &got, &want);
    }};
}

fn gemm_case<O: Ops>(o: &O, g: &Gemm, seed: u64, abs: bool) -> Vec<Vec<f32>> {
    let (ea, eb, ec) = g.extents();
    let f = |v: Vec<f32>| {
        if abs {
            v.iter().map(|x| x.abs()).collect()
        } else {
            v
        }
    };
    let a = o.upload(&f(random(seed, ea + 3, 1.0))).unwrap();
    let b = o.upload(&f(random(seed + 1, eb + 2, 1.0))).unwrap();
    // C starts as NaN where beta = 0 (it must not be read) and random otherwise.
    let c0 = if g.beta == 0.0 {
        vec![f32::NAN; ec + 5]
    } else {
        random(seed + 2, ec + 5, 1.0)
    };
    let mut c = o.upload(&if abs { vec![0.0; ec + 5] } else { c0 }).unwrap();
    o.gemm(g, &a, &b, &mut c).unwrap();
    vec![o.download(&c).unwrap()]
}

#[test]
fn sgemm_matches_ref_bit_for_bit_on_ragged_batched_shapes() {
    let Some(cuda) = cuda_or_skip("sgemm_matches_ref_bit_for_bit_on_ragged_batched_shapes") else {
        return;
    };
    // Every tile of gemm.cu on every case (each computes every output the same way).
    for (tile, t) in GEMM_TILES.iter().enumerate() {
        cuda.force_gemm_tile(Some(tile));
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for (m, n, k, batch, beta) in [
                (67, 130, 37, 3, 0.3),
                (1, 5, 200, 2, 0.0),
                (129, 1, 17, 1, 1.0),
                (64, 64, 16, 2, 0.0),
                (130, 260, 33, 2, 0.0),
            ] {
                let g = Gemm {
                    alpha: 0.7,
                    beta,
                    batch,
                    a_off: 5,
                    a_stride: m * k + 11,
                    b_off: 7,
                    b_stride: k * n + 3,
                    c_off: 2,
                    c_stride: m * n + 4,
                    ..Gemm::new(m, n, k, ta, tb)
                };
                let want = gemm_case(&RefOps, &g, 10, false);
                let got = gemm_case(&cuda, &g, 10, false);
                bits_equal(
                    &format!(
                        "{} sgemm {m}x{n}x{k} batch {batch} ta {ta} tb {tb} beta {beta}",
                        t.entry
                    ),
                    &got,
                    &want,
                );
            }
        }
    }
    cuda.force_gemm_tile(None);
}

#[test]
fn batch_summing_sgemm_is_within_the_summation_bound() {
    let Some(cuda) = cuda_or_skip("batch_summing_sgemm_is_within_the_summation_bound") else {
        return;
    };
    for (tile, (m, n, k, batch, ta, tb)) in [
        (18, 27, 49, 5, false, true),
        (70, 33, 100, 37, false, true),
        (10, 65, 3, 70, true, false),
        (130, 200, 20, 40, false, true),
    ]
    .into_iter()
    .enumerate()
    {
        // Each case on another tile (their slice counts differ).
        cuda.force_gemm_tile(Some(tile % GEMM_TILES.len()));
        let g = Gemm {
            beta: 1.0,
            batch,
            a_stride: m * k,
            b_stride: k * n,
            c_off: 1,
            sum_batch: true,
            ..Gemm::new(m, n, k, ta, tb)
        };
        let want = gemm_case(&RefOps, &g, 20, false)[0].clone();
        let got = gemm_case(&cuda, &g, 20, false)[0].clone();
        let bound = gemm_case(
            &RefOps,
            &Gemm {
                alpha: 1.0,
                beta: 0.0,
                ..g
            },
            20,
            true,
        )[0]
        .clone();
        let u = f32::EPSILON as f64 / 2.0;
        let kk = (batch * k) as f64;
        let mut worst = 0.0f64;
        for i in g.c_off..g.c_off + m * n {
            // C = 1 * sum + 1 * C0: the sum's bound plus one rounding of each of the two terms.
            let allowed = 2.0 * kk * u * bound[i] as f64 + 4.0 * u * (want[i].abs() as f64 + 1.0);
            let d = (got[i] as f64 - want[i] as f64).abs();
            worst = worst.max(d / allowed);
            assert!(
                d <= allowed,
                "sum_batch {m}x{n}x{k} batch {batch}: element {i}: {d:e} > {allowed:e}"
            );
        }
        println!(
            "batch-summing sgemm {m}x{n}x{k} batch {batch} ({}): worst difference {worst:.3} of its bound",
            GEMM_TILES[tile % GEMM_TILES.len()].entry
        );
    }
    cuda.force_gemm_tile(None);
}

#[test]
fn convolution_kernels_match_ref() {
    let Some(cuda) = cuda_or_skip("convolution_kernels_match_ref") else {
        return;
    };
    compare!(&cuda, "im2col / col2im 2x3x7x5 k3", bits_equal, |o| {
        let (n, c, h, w, k) = (2, 3, 7, 5, 3);
        let x = o.upload(&random(1, n * c * h * w, 1.0)).unwrap();
        let mut col = o.zeros(n * c * k * k * h * w).unwrap();
        o.im2col(&x, n, c, h, w, k, &mut col).unwrap();
        let dcol = o.upload(&random(2, n * c * k * k * h * w, 1.0)).unwrap();
        let mut dx = o.upload(&random(3, n * c * h * w, 1.0)).unwrap();
        o.col2im(&dcol, n, c, h, w, k, &mut dx).unwrap();
        vec![o.download(&col).unwrap(), o.download(&dx).unwrap()]
    });
    compare!(
        &cuda,
        "gated epilogue 2x5x33",
        |w, g, r| normwise(w, g, r, 2e-6),
        |o| {
            let (n, cout, hw) = (2, 5, 33);
            let mut z = o.upload(&random(4, n * 2 * cout * hw, 2.0)).unwrap();
            let params = o.upload(&random(5, 20, 1.0)).unwrap();
            let mut out = o.zeros(n * cout * hw).unwrap();
            o.gated_forward(&mut z, n, cout, hw, &params, 9, &mut out)
                .unwrap();
            let d = o.upload(&random(6, n * cout * hw, 1.0)).unwrap();
            let mut dz = o.zeros(n * 2 * cout * hw).unwrap();
            o.gated_backward(&d, &z, n, cout, hw, &mut dz).unwrap();
            vec![
                o.download(&out).unwrap(),
                o.download(&z).unwrap(),
                o.download(&dz).unwrap(),
            ]
        }
    );
}

#[test]
fn group_norm_matches_ref() {
    let Some(cuda) = cuda_or_skip("group_norm_matches_ref") else {
        return;
    };
    compare!(
        &cuda,
        "group norm + SiLU",
        |w, g, r| normwise(w, g, r, 2e-6),
        |o| {
            let mut outs = Vec::new();
            // Groups smaller and larger than a block of 256 threads; one without SiLU.
            for (n, c, hw, groups, silu) in [
                (3, 12, 49, 4, true),
                (2, 64, 784, 8, true),
                (2, 6, 25, 3, false),
            ] {
                let len = n * c * hw;
                let x = o
                    .upload(
                        &random(7, len, 1.5)
                            .iter()
                            .map(|v| v + 0.3)
                            .collect::<Vec<_>>(),
                    )
                    .unwrap();
                let params = o.upload(&random(8, 2 * c + 3, 1.0)).unwrap();
                let (mut out, mut xhat, mut rstd) = (
                    o.zeros(len).unwrap(),
                    o.zeros(len).unwrap(),
                    o.zeros(n * groups).unwrap(),
                );
                o.group_norm_forward(
                    &x,
                    n,
                    c,
                    hw,
                    groups,
                    &params,
                    3,
                    3 + c,
                    silu,
                    &mut out,
                    &mut xhat,
                    &mut rstd,
                )
                .unwrap();
                let d = o.upload(&random(9, len, 1.0)).unwrap();
                let (mut dx, mut sums) = (o.zeros(len).unwrap(), o.zeros(2 * n * c).unwrap());
                o.group_norm_backward(
                    &d,
                    &xhat,
                    &rstd,
                    n,
                    c,
                    hw,
                    groups,
                    &params,
                    3,
                    3 + c,
                    silu,
                    &mut dx,
                    &mut sums,
                )
                .unwrap();
                for b in [&out, &xhat, &rstd, &dx, &sums] {
                    outs.push(o.download(b).unwrap());
                }
            }
            outs
        }
    );
}

#[test]
fn layer_kernels_match_ref() {
    let Some(cuda) = cuda_or_skip("layer_kernels_match_ref") else {
        return;
    };
    compare!(
        &cuda,
        "pool / upsample / copies / sums / biases",
        bits_equal,
        |o| {
            let (planes, h, w) = (5, 6, 10);
            let x = o.upload(&random(10, planes * h * w, 1.0)).unwrap();
            let mut pooled = o.zeros(planes * h * w / 4).unwrap();
            o.avg_pool(&x, planes, h, w, &mut pooled).unwrap();
            let mut back = o.zeros(planes * h * w).unwrap();
            o.avg_pool_backward(&pooled, planes, h, w, &mut back)
                .unwrap();
            let mut up = o.zeros(4 * planes * h * w).unwrap();
            o.upsample(&x, planes, h, w, &mut up).unwrap();
            let d = o.upload(&random(11, 4 * planes * h * w, 1.0)).unwrap();
            let mut down = o.zeros(planes * h * w).unwrap();
            o.upsample_backward(&d, planes, h, w, &mut down).unwrap();
            let mut rows = o.upload(&random(12, 100, 1.0)).unwrap();
            o.copy_rows(3, 7, &x, 4, 19, &mut rows, 5, 11).unwrap();
            let mut sp = o.zeros(planes * 3).unwrap();
            o.sum_planes(&x, planes * 3, 20, &mut sp).unwrap();
            let mut acc = o.upload(&random(13, 40, 1.0)).unwrap();
            o.add_column_sums(&x, 12, 25, &mut acc, 6).unwrap();
            let mut y = o.upload(&random(14, 7 * 9, 1.0)).unwrap();
            o.add_row_bias(&mut y, 7, 9, &x, 13).unwrap();
            let e = o.upload(&random(15, planes * 3, 1.0)).unwrap();
            let mut hh = o.upload(&random(16, planes * 3 * 20, 1.0)).unwrap();
            o.add_per_plane(&mut hh, planes * 3, 20, &e).unwrap();
            [pooled, back, up, down, rows, sp, acc, y, hh]
                .iter()
                .map(|b| o.download(b).unwrap())
                .collect()
        }
    );
    compare!(&cuda, "SiLU", |w, g, r| normwise(w, g, r, 2e-6), |o| {
        let x = o.upload(&random(17, 1001, 3.0)).unwrap();
        let d = o.upload(&random(18, 1001, 1.0)).unwrap();
        let (mut s, mut ds) = (o.zeros(1001).unwrap(), o.zeros(1001).unwrap());
        o.silu(&x, &mut s).unwrap();
        o.silu_backward(&x, &d, &mut ds).unwrap();
        vec![o.download(&s).unwrap(), o.download(&ds).unwrap()]
    });
}

#[test]
fn denoiser_loss_and_adam_kernels_match_ref_bit_for_bit() {
    let Some(cuda) = cuda_or_skip("denoiser_loss_and_adam_kernels_match_ref_bit_for_bit") else {
        return;
    };
    compare!(
        &cuda,
        "preconditioning, loss residual, Adam",
        bits_equal,
        |o| {
            let (n, chw) = (3, 2 * 45);
            let len = n * chw;
            let y = o.upload(&random(20, len, 1.0)).unwrap();
            let m = o.upload(&mask(21, len)).unwrap();
            let a = o.upload(&mask(22, len)).unwrap();
            let f = o.upload(&random(23, len, 1.0)).unwrap();
            let sig = [0.02f32, 0.7, 13.0];
            let up = |v: Vec<f32>| o.upload(&v).unwrap();
            let coefs = SampleCoefs {
                c_skip: up(sig
                    .iter()
                    .map(|&s| ambient_core::precond::c_skip(s, 0.5))
                    .collect()),
                c_out: up(sig
                    .iter()
                    .map(|&s| ambient_core::precond::c_out(s, 0.5))
                    .collect()),
                c_in: up(sig
                    .iter()
                    .map(|&s| ambient_core::precond::c_in(s, 0.5))
                    .collect()),
                inv_s2: up(sig.iter().map(|&s| 1.0 / (s * s)).collect()),
            };
            let mut f_in = o.zeros(2 * len).unwrap();
            o.network_input(&y, &m, &coefs.c_in, n, chw, &mut f_in)
                .unwrap();
            let mut d = o.zeros(len).unwrap();
            o.precondition(&y, &m, &f, &coefs, 0.5, n, chw, &mut d)
                .unwrap();
            let mut d_f = o.zeros(len).unwrap();
            o.output_scale_mul(&f, &m, &coefs, 0.5, n, chw, &mut d_f)
                .unwrap();
            let (mut grad, mut resid) = (o.zeros(len).unwrap(), o.zeros(len).unwrap());
            o.weighted_residual(&d, &y, &a, &m, &coefs, 0.5, n, chw, &mut grad, &mut resid)
                .unwrap();
            let mut outs: Vec<Vec<f32>> = [&f_in, &d, &d_f, &grad, &resid]
                .iter()
                .map(|b| o.download(b).unwrap())
                .collect();
            for clip in [1.0f32, 0.37] {
                let mut w = o.upload(&random(24, 777, 1.0)).unwrap();
                let mut g = o.upload(&random(25, 777, 0.1)).unwrap();
                let mut mm = o.upload(&random(26, 777, 0.01)).unwrap();
                let mut v = o
                    .upload(
                        &random(27, 777, 0.01)
                            .iter()
                            .map(|x| x * x)
                            .collect::<Vec<_>>(),
                    )
                    .unwrap();
                let h = AdamStep {
                    clip,
                    lr: 1e-3,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    bc1: 0.271,
                    bc2: 0.00299,
                };
                o.adam(&mut w, &mut g, &mut mm, &mut v, &h).unwrap();
                outs.extend([&w, &g, &mm, &v].iter().map(|b| o.download(b).unwrap()));
            }
            outs
        }
    );
}

/// Milliseconds per SGEMM for every tile of gemm.cu on the products of the spec network at
/// batch 256 (forward, input gradient, batch-summed weight gradient of the 3x3 convolutions),
/// beside the tile `gemm_tile` picks: the evidence for that choice. Device only; prints.
#[test]
#[ignore]
fn bench_sgemm_tiles_on_the_network_products() {
    let Some(cuda) = cuda_or_skip("bench_sgemm_tiles_on_the_network_products") else {
        return;
    };
    if common::is_cpu_emulator(&cuda.gpu) {
        println!("ambient CPU emulator: skipping bench_sgemm_tiles_on_the_network_products");
        return;
    }
    let batch = 256;
    // (cout, cin, hw): the spec network's 3x3 convolutions (cin = 96, 192: decoder concats).
    let convs = [
        (32, 32, 784),
        (32, 96, 784),
        (64, 64, 196),
        (64, 128, 196),
        (64, 64, 49),
        (64, 128, 49),
    ];
    let mut products = Vec::new();
    for (cout, cin, hw) in convs {
        let (m2, kd) = (2 * cout, cin * 9);
        products.push(Gemm {
            batch,
            b_stride: kd * hw,
            c_stride: m2 * hw,
            ..Gemm::new(m2, hw, kd, false, false)
        });
        products.push(Gemm {
            batch,
            b_stride: m2 * hw,
            c_stride: kd * hw,
            ..Gemm::new(kd, hw, m2, true, false)
        });
        products.push(Gemm {
            batch,
            a_stride: m2 * hw,
            b_stride: kd * hw,
            beta: 1.0,
            sum_batch: true,
            ..Gemm::new(m2, kd, hw, false, true)
        });
    }
    let chosen = |g: &Gemm| GEMM_TILES[ambient_cuda::cuda_ops::gemm_tile(g.m, g.n, g.k)].entry;
    for g in &products {
        let (ea, eb, ec) = g.extents();
        let a = cuda.upload(&random(1, ea, 1.0)).unwrap();
        let b = cuda.upload(&random(2, eb, 1.0)).unwrap();
        let mut c = cuda.zeros(ec).unwrap();
        let mut line = format!(
            "TILES m{} n{} k{}{}{}{}:",
            g.m,
            g.n,
            g.k,
            if g.sum_batch { " batch-sum" } else { "" },
            if g.ta { " ta" } else { "" },
            if g.tb { " tb" } else { "" }
        );
        for (i, t) in GEMM_TILES.iter().enumerate() {
            cuda.force_gemm_tile(Some(i));
            cuda.gemm(g, &a, &b, &mut c).unwrap();
            cuda.synchronize().unwrap();
            let reps = 10;
            let start = std::time::Instant::now();
            for _ in 0..reps {
                cuda.gemm(g, &a, &b, &mut c).unwrap();
            }
            cuda.synchronize().unwrap();
            let ms = 1e3 * start.elapsed().as_secs_f64() / reps as f64;
            line.push_str(&format!(" {} {ms:.3}", t.entry));
        }
        cuda.force_gemm_tile(None);
        println!("{line}; chosen {}", chosen(g));
    }
}
