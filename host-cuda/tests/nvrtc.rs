//! The kernels' CUDA C through NVRTC, which needs no GPU: every kernel is compiled to PTX for
//! two architectures, the PTX holds each entry point and no fused multiply-add (the
//! bit-for-bit claim of elementwise.cu), and a broken program gives NVRTC's log. Skips with
//! "NVRTC not found" where no libnvrtc can be loaded (set AMBIENT_NVRTC to its path).
#![cfg(feature = "cuda")]

use ambient_cuda::device::ELEMENTWISE_CU;
use ambient_cuda::nvrtc::Nvrtc;
use ambient_cuda::{ComputeCapability, CudaHostError};

fn nvrtc_or_skip(test: &str) -> Option<Nvrtc> {
    match Nvrtc::load() {
        Ok(n) => Some(n),
        Err(e @ CudaHostError::NvrtcNotFound { .. }) => {
            println!("NVRTC not found: skipping {test} ({e})");
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

const KERNELS: [&str; 9] = [
    "fill",
    "copy",
    "scale",
    "scale_per_sample",
    "add_scalar",
    "axpby",
    "mul",
    "dot_partial",
    "sum_partials",
];

#[test]
fn elementwise_kernels_compile_without_fma() {
    let Some(nvrtc) = nvrtc_or_skip("elementwise_kernels_compile_without_fma") else {
        return;
    };
    println!(
        "NVRTC {}.{} from {}",
        nvrtc.version.0, nvrtc.version.1, nvrtc.library
    );
    // The oldest architecture this NVRTC knows (7.0 for NVRTC 12, 7.5 for 13) and Hopper.
    let oldest = nvrtc.supported_archs().unwrap()[0];
    for (major, minor) in [(oldest.major, oldest.minor), (9, 0)] {
        let cc = ComputeCapability { major, minor };
        let ptx = nvrtc.compile(ELEMENTWISE_CU, "elementwise.cu", cc).unwrap();
        assert!(ptx.contains(&format!(".target sm_{major}{minor}")), "{ptx}");
        for k in KERNELS {
            assert!(
                ptx.contains(&format!(".entry {k}(")),
                "{k} missing for sm_{major}{minor}"
            );
        }
        assert!(
            !ptx.contains("fma.rn.f32"),
            "an f32 FMA in the PTX for sm_{major}{minor}"
        );
        // The f64 reduction must not be contracted either (it adds exact products).
        assert!(
            !ptx.contains("fma.rn.f64"),
            "an f64 FMA in the PTX for sm_{major}{minor}"
        );
    }
}

#[test]
fn a_broken_program_returns_the_compiler_log() {
    let Some(nvrtc) = nvrtc_or_skip("a_broken_program_returns_the_compiler_log") else {
        return;
    };
    let cc = ComputeCapability { major: 8, minor: 0 };
    let err = nvrtc
        .compile(
            "extern \"C\" __global__ void k() { undeclared = 1; }",
            "broken.cu",
            cc,
        )
        .unwrap_err();
    match err {
        CudaHostError::Nvrtc { call, log, .. } => {
            assert_eq!(call, "nvrtcCompileProgram");
            assert!(log.contains("undeclared"), "log: {log}");
        }
        e => panic!("expected an NVRTC compile error, got {e}"),
    }
}

#[test]
fn a_device_newer_than_nvrtc_gets_the_newest_ptx_it_knows() {
    let Some(nvrtc) = nvrtc_or_skip("a_device_newer_than_nvrtc_gets_the_newest_ptx_it_knows")
    else {
        return;
    };
    let archs = nvrtc.supported_archs().unwrap();
    // Every NVRTC 12 and 13 compiles for Ampere (8.0) and Hopper (9.0); NVRTC 13 dropped
    // Volta (7.0), so the oldest is not pinned.
    for want in [(8, 0), (9, 0)] {
        assert!(
            archs.iter().any(|c| (c.major, c.minor) == want),
            "{want:?} not among {archs:?}"
        );
    }
    assert!(
        archs
            .windows(2)
            .all(|w| (w[0].major, w[0].minor) < (w[1].major, w[1].minor)),
        "{archs:?} not ascending"
    );
    let newest = *archs.last().unwrap();
    let future = ComputeCapability {
        major: 99,
        minor: 0,
    };
    let ptx = nvrtc
        .compile("extern \"C\" __global__ void k() {}", "k.cu", future)
        .unwrap();
    let target = format!(".target sm_{}{}", newest.major, newest.minor);
    assert!(ptx.contains(&target), "expected {target} in\n{ptx}");
}

/// The network's kernels and their entry points, by module.
const NET_KERNELS: [(&str, &[&str]); 5] = [
    ("gemm", &["sgemm", "sum_slices"]),
    (
        "conv",
        &["im2col", "col2im", "gated_forward", "gated_backward"],
    ),
    ("norm", &["group_norm_forward", "group_norm_backward"]),
    (
        "layers",
        &[
            "copy_rows",
            "sum_planes",
            "add_column_sums",
            "avg_pool",
            "avg_pool_backward",
            "upsample",
            "upsample_backward",
            "add_row_bias",
            "add_per_plane",
            "silu",
            "silu_backward",
        ],
    ),
    (
        "train",
        &[
            "network_input",
            "precondition",
            "output_scale_mul",
            "weighted_residual",
            "adam",
        ],
    ),
];

/// Every network module compiles for Ampere (8.0) and Hopper (9.0) and holds its entry
/// points. The SGEMM has f32 fused multiply-adds (explicit __fmaf_rn, as RefOps' mul_add);
/// the loss / preconditioning / Adam module has none (it must round each product and sum as
/// the CPU trainer does). conv, norm and layers are not checked: CUDA's own expf (in their
/// sigmoids) is written with FMAs.
#[test]
fn network_kernels_compile_for_sm80_and_sm90() {
    let Some(nvrtc) = nvrtc_or_skip("network_kernels_compile_for_sm80_and_sm90") else {
        return;
    };
    assert_eq!(
        ambient_cuda::cuda_ops::NET_MODULES.map(|(n, _)| n),
        NET_KERNELS.map(|(n, _)| n)
    );
    for (major, minor) in [(8, 0), (9, 0)] {
        let cc = ComputeCapability { major, minor };
        for ((name, src), (_, kernels)) in
            ambient_cuda::cuda_ops::NET_MODULES.iter().zip(NET_KERNELS)
        {
            let ptx = nvrtc.compile(src, &format!("{name}.cu"), cc).unwrap();
            assert!(ptx.contains(&format!(".target sm_{major}{minor}")));
            for k in kernels {
                assert!(
                    ptx.contains(&format!(".entry {k}(")),
                    "{k} missing in {name} for sm_{major}{minor}"
                );
            }
            let fma = ptx.contains("fma.rn.f32");
            match *name {
                "gemm" => assert!(fma, "no FMA in the SGEMM for sm_{major}{minor}"),
                "train" => assert!(!fma, "an FMA in train.cu for sm_{major}{minor}"),
                _ => {}
            }
        }
    }
}
