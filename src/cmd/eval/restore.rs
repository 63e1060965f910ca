//! `ambient eval restore`: restores the measurements of a corrupted dataset by every method
//! asked for and prints PSNR and SSIM against the clean images (and NFE per image) as a table,
//! optionally as JSON: the measurement itself (missing pixels 0), the ambient model's NFE = 1
//! restoration, classical inpainting (harmonic, biharmonic, total variation) and DPS with a clean-trained model.

use std::path::{Path, PathBuf};

use ambient_core::schedule::EdmSchedule;
use ambient_core::AmbientRng;
use ambient_cpu::denoiser::CpuDenoiser;
use ambient_cpu::eval::dps::{dps_sample, DpsStepSize};
use ambient_cpu::eval::inpaint::{inpaint_images, Inpainting, SolverSettings};
use ambient_cpu::eval::ssim::Ssim;
use ambient_cpu::frozen::FrozenParams;
use ambient_cpu::io::dataset::{write_images_npy, CorruptedDataset};
use ambient_cpu::io::weights::load_weights;
use ambient_cpu::metrics::psnr;
use ambient_cpu::restore::restore_measurements;
use ambient_cpu::tensor_nd::NdTensor;
use ambient_cpu::unet::UNet;
use anyhow::{anyhow, bail, Context, Result};
use ndarray::Array4;
use serde_json::json;

use crate::{data, progress};

#[derive(clap::Args)]
pub struct Args {
    /// The ambient model's weight file (NFE = 1 restoration).
    #[arg(long)]
    pub weights: PathBuf,
    /// Measurements and masks (same sources as `restore`).
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// Clean images of the same measurements, in the same order.
    #[arg(long)]
    pub clean: PathBuf,
    /// Evaluate the first N measurements only.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Restoration sigma s_r, or "auto" (chosen on held-out measurements, as `restore` does).
    #[arg(long, default_value = "auto")]
    pub sigma: String,
    #[arg(long, default_value_t = 200)]
    pub holdout: usize,
    /// Classical baseline(s): harmonic, biharmonic, tv (repeat the flag for several).
    #[arg(long)]
    pub baseline: Vec<String>,
    /// DPS with this clean-trained weight file.
    #[arg(long)]
    pub dps: Option<PathBuf>,
    /// DPS sampler steps N (NFE = 2N: a forward and a vector-Jacobian call per step).
    #[arg(long, default_value_t = 50)]
    pub dps_steps: usize,
    /// DPS step size zeta (on the gradient of the residual norm; see eval::dps).
    #[arg(long, default_value_t = 1.0)]
    pub zeta: f32,
    /// DPS step size along the schedule: "vp" = zeta (1 + s^2), the paper's step on its
    /// variance-preserving state carried over to EDM's; "constant" = zeta.
    #[arg(long, default_value = "vp")]
    pub dps_step_size: String,
    /// DPS on the first N evaluated measurements only (it costs 2N network calls per image).
    #[arg(long)]
    pub dps_limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Write the table as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write each method's restorations as uint8 .npy into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One row of the table.
struct Row {
    method: String,
    images: usize,
    psnr: f64,
    ssim: f64,
    nfe: usize,
    note: String,
}

fn score(
    method: String,
    clean: &CorruptedDataset,
    est: &[f32],
    nfe: usize,
    note: String,
) -> Result<Row> {
    let n = est.len() / clean.image_len();
    let reference = &clean.measurements[..est.len()];
    let ssim = Ssim::gaussian().mean(reference, est, (n, clean.c, clean.h, clean.w))?;
    Ok(Row {
        method,
        images: n,
        psnr: psnr(reference, est, clean.image_len()),
        ssim,
        nfe,
        note,
    })
}

fn restoration_sigma(
    a: &Args,
    net: &UNet,
    params: &ambient_cpu::params::ParamStore,
    ds: &CorruptedDataset,
) -> Result<f32> {
    let (sigma, choice) =
        crate::cmd::restore::resolve_sigma(&a.sigma, a.holdout, net, params, ds, &a.data)?;
    if let Some(choice) = choice {
        eprintln!(
            "restoration sigma {} (chosen on {} held-out measurements)",
            choice.sigma, choice.images
        );
    }
    Ok(sigma)
}

fn run_dps(a: &Args, weights: &Path, ds: &CorruptedDataset, n: usize) -> Result<(Vec<f32>, usize)> {
    let (cfg, params) = load_weights(weights)?;
    if cfg.corruption.mode != "clean" {
        eprintln!(
            "warning: {} was trained in mode {:?}; DPS expects a clean-trained model",
            weights.display(),
            cfg.corruption.mode
        );
    }
    let u = &cfg.unet;
    if (ds.c, ds.h, ds.w) != (u.img_channels, u.img_resolution, u.img_resolution) {
        bail!(
            "{}: the DPS model takes {} x {} x {} images",
            weights.display(),
            u.img_channels,
            u.img_resolution,
            u.img_resolution
        );
    }
    let net = UNet::new(&cfg.unet).map_err(|e| anyhow!("{}: {e}", weights.display()))?;
    let schedule = EdmSchedule::with_steps(a.dps_steps).map_err(|e| anyhow!("--dps-steps: {e}"))?;
    let step_size = match a.dps_step_size.as_str() {
        "vp" => DpsStepSize::VpEquivalent,
        "constant" => DpsStepSize::Constant,
        other => bail!("--dps-step-size {other:?}: vp or constant"),
    };
    let frozen = FrozenParams::new(&params);
    let mut den = CpuDenoiser {
        net: &net,
        params: &frozen,
    };
    let mut rng = AmbientRng::new(a.seed);
    let (c, h, w, l) = (ds.c, ds.h, ds.w, ds.image_len());
    let mut out = vec![0.0f32; n * l];
    let batch = a.batch.max(1);
    let pb = progress::bar((n.div_ceil(batch) * a.dps_steps) as u64, "DPS");
    let mut nfe = 0;
    for start in (0..n).step_by(batch) {
        let b = batch.min(n - start);
        let r = start * l..(start + b) * l;
        let t =
            |v: &[f32]| NdTensor(Array4::from_shape_vec((b, c, h, w), v.to_vec()).expect("shape"));
        let (y, m) = (t(&ds.measurements[r.clone()]), t(&ds.masks[r.clone()]));
        let mut x = NdTensor(Array4::zeros((b, c, h, w)));
        rng.fill_normal(x.0.as_slice_mut().expect("standard layout"));
        x.0.mapv_inplace(|v| v * schedule.sigma_max());
        let calls = dps_sample(
            &mut den,
            &mut x,
            &y,
            &m,
            &schedule,
            a.zeta,
            step_size,
            |_, res| {
                pb.inc(1);
                pb.set_message(format!("residual {res:.3}"));
            },
        )
        .map_err(|e| anyhow!("DPS on images {start}..{}: {e}", start + b))?;
        nfe = calls.nfe();
        out[r].copy_from_slice(x.0.as_slice().expect("standard layout"));
    }
    pb.finish();
    Ok((out, nfe))
}

pub fn run(a: Args) -> Result<()> {
    let (cfg, params) = load_weights(&a.weights)?;
    let net = UNet::new(&cfg.unet).map_err(|e| anyhow!("{}: {e}", a.weights.display()))?;
    let ds = data::take(data::load(&a.data, a.masks.as_deref())?, a.limit);
    let u = &cfg.unet;
    if (ds.c, ds.h, ds.w) != (u.img_channels, u.img_resolution, u.img_resolution) {
        bail!(
            "{}: images are {} x {} x {} but {} takes {} x {} x {}",
            a.data.display(),
            ds.c,
            ds.h,
            ds.w,
            a.weights.display(),
            u.img_channels,
            u.img_resolution,
            u.img_resolution
        );
    }
    let clean = data::take(data::load(&a.clean, None)?, Some(ds.n));
    if (clean.n, clean.c, clean.h, clean.w) != (ds.n, ds.c, ds.h, ds.w) {
        bail!(
            "{}: {} clean images of {} x {} x {} do not match the {} measurements",
            a.clean.display(),
            clean.n,
            clean.c,
            clean.h,
            clean.w,
            ds.n
        );
    }
    let methods: Vec<Inpainting> = a
        .baseline
        .iter()
        .map(|b| match b.as_str() {
            "harmonic" => Ok(Inpainting::Harmonic),
            "biharmonic" => Ok(Inpainting::Biharmonic),
            "tv" => Ok(Inpainting::TotalVariation),
            other => Err(anyhow!("--baseline {other:?}: harmonic, biharmonic or tv")),
        })
        .collect::<Result<_>>()?;
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out)
            .with_context(|| format!("{}: cannot create", out.display()))?;
    }
    let dims = (ds.n, ds.c, ds.h, ds.w);
    let save = |name: &str, n: usize, v: &[f32]| -> Result<()> {
        if let Some(out) = &a.out {
            write_images_npy(&out.join(format!("{name}.npy")), (n, ds.c, ds.h, ds.w), v)?;
        }
        Ok(())
    };
    let mut rows = vec![score(
        "measurement (missing = 0)".into(),
        &clean,
        &ds.measurements,
        0,
        String::new(),
    )?];

    let sigma = restoration_sigma(&a, &net, &params, &ds)?;
    let pb = progress::bar(ds.n as u64, "restore");
    let r = restore_measurements(
        &net,
        &params,
        dims,
        &ds.measurements,
        &ds.masks,
        sigma,
        a.batch,
        |d| pb.set_position(d as u64),
    )
    .map_err(|e| anyhow!("{}: {e}", a.data.display()))?;
    pb.finish();
    save("ambient", ds.n, &r)?;
    rows.push(score(
        "ambient (NFE = 1)".into(),
        &clean,
        &r,
        1,
        format!("sigma {sigma}"),
    )?);

    for m in methods {
        let (v, conv) = inpaint_images(
            &ds.measurements,
            &ds.masks,
            dims,
            m,
            SolverSettings::default(),
        )?;
        save(m.name(), ds.n, &v)?;
        rows.push(score(
            m.name().into(),
            &clean,
            &v,
            0,
            if conv.outer_iterations > 0 {
                format!(
                    "<= {} reweightings, <= {} CG iterations per image",
                    conv.outer_iterations, conv.iterations
                )
            } else {
                format!(
                    "CG <= {} iterations, residual <= {:.1e}",
                    conv.iterations, conv.relative_residual
                )
            },
        )?);
    }

    if let Some(w) = &a.dps {
        let n = a.dps_limit.unwrap_or(ds.n).min(ds.n);
        let (v, nfe) = run_dps(&a, w, &ds, n)?;
        save("dps", n, &v)?;
        rows.push(score(
            format!("DPS ({} steps)", a.dps_steps),
            &clean,
            &v,
            nfe,
            format!("zeta {}, step size {}", a.zeta, a.dps_step_size),
        )?);
    }

    println!(
        "{:<28} {:>7} {:>9} {:>7} {:>6}  note",
        "method", "images", "PSNR dB", "SSIM", "NFE"
    );
    for r in &rows {
        println!(
            "{:<28} {:>7} {:>9.2} {:>7.4} {:>6}  {}",
            r.method, r.images, r.psnr, r.ssim, r.nfe, r.note
        );
    }
    if let Some(path) = &a.json {
        let table: Vec<_> = rows
            .iter()
            .map(|r| json!({"method": r.method, "images": r.images, "psnr_db": r.psnr, "ssim": r.ssim, "nfe": r.nfe, "note": r.note}))
            .collect();
        super::write_json(
            path,
            &json!({
                "data": a.data.display().to_string(),
                "clean": a.clean.display().to_string(),
                "weights": a.weights.display().to_string(),
                "sigma": sigma,
                "ssim": "Gaussian 11x11 window, sigma 1.5, K1 0.01, K2 0.03, data range 2",
                "methods": table,
            }),
        )?;
    }
    Ok(())
}
