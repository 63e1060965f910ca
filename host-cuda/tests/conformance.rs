//! CudaTensor against the core's SliceTensor, the reference semantics of every `Tensor`
//! operation, on random data. Each test opens device 0 and skips ("no CUDA device") where
//! there is none.
//!
//! Tolerances: the element-wise kernels use the round-to-nearest f32 intrinsics, never
//! contracted to FMA, with subnormals kept (elementwise.cu, nvrtc::COMPILE_OPTIONS); each is
//! then one or two IEEE-754 correctly rounded operations in the same order as SliceTensor's, so
//! results must be equal bit for bit. `dot` and `sum_sq` add the same exact f64 products (a
//! product of two f32 is exact in f64) in another order: each order's error is at most
//! (N-1) u sum|x_i y_i| (Higham, Accuracy and Stability, eq. 4.4, u = 2^-53), so the two sums
//! differ by at most 2 (N-1) u sum|x_i y_i| (to first order; the N here keep (N-1) u < 1e-9).
#![cfg(feature = "cuda")]

mod common;

use ambient_core::tensor::{Shape, SliceTensor, Tensor};
use ambient_core::AmbientRng;
use ambient_cuda::{CudaHostError, CudaTensor};
use common::gpu_or_skip;

fn random(rng: &mut AmbientRng, n: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    rng.fill_normal(&mut v);
    v
}

fn assert_bits_eq(gpu: &CudaTensor, cpu: &[f32], what: &str) {
    let got = gpu.to_host().unwrap();
    assert_eq!(got.len(), cpu.len());
    for (i, (g, c)) in got.iter().zip(cpu).enumerate() {
        assert_eq!(
            g.to_bits(),
            c.to_bits(),
            "{what}: element {i}: gpu {g} cpu {c}"
        );
    }
}

/// Runs every element-wise operation on both tensors in turn, comparing after each.
fn elementwise_ops_match(test: &str, shape: Shape, seed: u64) {
    let Some(gpu) = gpu_or_skip(test) else { return };
    let mut rng = AmbientRng::new(seed);
    let n = shape.len();
    let (mut a, mut b) = (random(&mut rng, n), random(&mut rng, n));
    let factors: Vec<f32> = (0..shape.n).map(|_| rng.normal() * 3.0).collect();
    let mut ga = CudaTensor::from_host(&gpu, shape, &a).unwrap();
    let gb = CudaTensor::from_host(&gpu, shape, &b).unwrap();
    let mut ca = SliceTensor::new(shape, &mut a).unwrap();
    let cb = SliceTensor::new(shape, &mut b).unwrap();
    assert_bits_eq(&ga, ca.data(), "upload");

    ga.axpby(0.7, &gb, -1.3);
    ca.axpby(0.7, &cb, -1.3);
    assert_bits_eq(&ga, ca.data(), "axpby");
    ga.mul(&gb);
    ca.mul(&cb);
    assert_bits_eq(&ga, ca.data(), "mul");
    ga.scale_per_sample(&factors);
    ca.scale_per_sample(&factors);
    assert_bits_eq(&ga, ca.data(), "scale_per_sample");
    ga.scale(1.0 / 3.0);
    ca.scale(1.0 / 3.0);
    assert_bits_eq(&ga, ca.data(), "scale");
    ga.add_scalar(0.1);
    ca.add_scalar(0.1);
    assert_bits_eq(&ga, ca.data(), "add_scalar");
    ga.copy_from(&gb);
    ca.copy_from(&cb);
    assert_bits_eq(&ga, ca.data(), "copy_from");
    ga.fill(-2.5);
    ca.fill(-2.5);
    assert_bits_eq(&ga, ca.data(), "fill");
    gpu.synchronize().unwrap();
}

#[test]
fn elementwise_ops_match_slice_tensor_bit_for_bit() {
    // 1938 elements: not a multiple of the 256-thread block, several blocks, odd sample size.
    elementwise_ops_match(
        "elementwise_ops_match_slice_tensor_bit_for_bit",
        Shape::new(3, 2, 17, 19),
        1,
    );
}

#[test]
fn elementwise_ops_cover_more_elements_than_threads() {
    // 4096 blocks x 256 threads = 1 048 576 threads: this shape has more elements, so the
    // grid-stride loops take a second turn.
    elementwise_ops_match(
        "elementwise_ops_cover_more_elements_than_threads",
        Shape::new(5, 1, 512, 420),
        2,
    );
}

/// |gpu - cpu| <= 2 (N-1) u sum|x_i y_i| (module docs).
fn assert_sum_close(gpu: f64, cpu: f64, x: &[f32], y: &[f32], what: &str) {
    let abs: f64 = x
        .iter()
        .zip(y)
        .map(|(&a, &b)| (a as f64 * b as f64).abs())
        .sum();
    let bound = 2.0 * (x.len().saturating_sub(1)) as f64 * f64::EPSILON / 2.0 * abs;
    assert!(
        (gpu - cpu).abs() <= bound,
        "{what}: gpu {gpu} cpu {cpu} differ by {} > {bound}",
        (gpu - cpu).abs()
    );
}

#[test]
fn dot_and_sum_sq_match_slice_tensor_and_repeat_exactly() {
    let test = "dot_and_sum_sq_match_slice_tensor_and_repeat_exactly";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let mut rng = AmbientRng::new(3);
    // 1, a partial block, one block, and enough for the 1024-block cap of stage 1 with a
    // grid-stride remainder (1024 x 256 = 262 144 < 300 001).
    for n in [1usize, 100, 256, 300_001] {
        let shape = Shape::new(1, 1, 1, n);
        let (mut x, mut y) = (random(&mut rng, n), random(&mut rng, n));
        let (gx, gy) = (
            CudaTensor::from_host(&gpu, shape, &x).unwrap(),
            CudaTensor::from_host(&gpu, shape, &y).unwrap(),
        );
        let (xs, ys) = (x.clone(), y.clone());
        let cx = SliceTensor::new(shape, &mut x).unwrap();
        let cy = SliceTensor::new(shape, &mut y).unwrap();
        let dot = gx.dot(&gy);
        assert_sum_close(dot, cx.dot(&cy), &xs, &ys, &format!("dot n={n}"));
        assert_sum_close(gx.sum_sq(), cx.sum_sq(), &xs, &xs, &format!("sum_sq n={n}"));
        // The reduction's order is fixed by n alone: the same input, the same bits.
        assert_eq!(gx.dot(&gy).to_bits(), dot.to_bits(), "dot n={n} repeated");
        if n == 1 {
            // One product: exact in f64, no additions to reorder.
            assert_eq!(dot, xs[0] as f64 * ys[0] as f64);
        }
    }
    gpu.synchronize().unwrap();
}

#[test]
fn empty_tensors_do_nothing_and_sum_to_zero() {
    let Some(gpu) = gpu_or_skip("empty_tensors_do_nothing_and_sum_to_zero") else {
        return;
    };
    let shape = Shape::new(0, 1, 4, 4);
    let mut t = CudaTensor::zeros(&gpu, shape).unwrap();
    let u = CudaTensor::zeros(&gpu, shape).unwrap();
    t.fill(1.0);
    t.axpby(1.0, &u, 2.0);
    t.scale_per_sample(&[]);
    assert_eq!(t.dot(&u), 0.0);
    assert_eq!(t.sum_sq(), 0.0);
    assert!(t.to_host().unwrap().is_empty());
    gpu.synchronize().unwrap();
}

#[test]
fn bad_input_is_a_typed_error_and_shape_mismatch_panics() {
    let Some(gpu) = gpu_or_skip("bad_input_is_a_typed_error_and_shape_mismatch_panics") else {
        return;
    };
    let err = CudaTensor::from_host(&gpu, Shape::new(1, 1, 2, 2), &[0.0; 3]);
    assert!(matches!(
        err,
        Err(CudaHostError::LengthMismatch {
            expected: 4,
            got: 3
        })
    ));
    let mut a = CudaTensor::zeros(&gpu, Shape::new(1, 1, 2, 2)).unwrap();
    let b = CudaTensor::zeros(&gpu, Shape::new(1, 1, 4, 1)).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.mul(&b)));
    assert!(r.is_err(), "mul of 2x2 by 4x1 must panic");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        a.scale_per_sample(&[1.0, 2.0])
    }));
    assert!(r.is_err(), "two factors for one sample must panic");
    let other =
        ambient_cuda::Gpu::open(&ambient_cuda::ptx_cache::PtxCache::default_location()).unwrap();
    let c = CudaTensor::zeros(&other, Shape::new(1, 1, 2, 2)).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.dot(&c)));
    assert!(r.is_err(), "a dot of tensors on two Gpus must panic");
    gpu.synchronize().unwrap();
}

#[test]
fn device_report() {
    let Some(gpu) = gpu_or_skip("device_report") else {
        return;
    };
    let i = gpu.info();
    println!(
        "CUDA device 0: {} (compute capability {}.{}, {:.1} GiB), driver supports CUDA {}.{}",
        i.name,
        i.cc.major,
        i.cc.minor,
        i.total_memory as f64 / (1u64 << 30) as f64,
        i.driver_version.0,
        i.driver_version.1
    );
    assert!(i.cc.major >= 3 && i.total_memory > 0);
}
