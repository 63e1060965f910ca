//! Writes `results.md` and its figures from the cached evaluations: the setup (command,
//! budget, machine, wall time, seeds), Table 1, Figure 3, memorization, and the comparison
//! with the paper, whose every number and verdict is computed here from the results.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use super::figures::{self, STRIP_COLS};
use super::plan::{ModelSpec, Network, Plan, DELTA, MEMO_P, MEMO_SUBSET, MEMO_THRESHOLD};
use super::stages::{checkpoint_step, read_json, Layout, Timings};

/// One corruption level of Table 1: the test data and the two evaluations (JSON, restorations).
pub struct Table1Level {
    pub p: f32,
    pub data: PathBuf,
    pub ambient: (PathBuf, PathBuf),
    pub clean: (PathBuf, PathBuf),
}

pub struct Fig3Row {
    pub model: ModelSpec,
    pub samples: PathBuf,
    pub json: PathBuf,
}

pub type MemoRow = Fig3Row;

pub struct Report<'a> {
    pub plan: &'a Plan,
    pub layout: &'a Layout,
    pub timings: &'a Timings,
    pub invocation_seconds: f64,
    pub table1: Vec<Table1Level>,
    pub fig3: Vec<Fig3Row>,
    pub memo: Vec<MemoRow>,
}

/// One method's scores at one level.
struct Scores {
    method: String,
    images: u64,
    psnr: f64,
    ssim: f64,
    nfe: u64,
    note: String,
}

fn methods(json: &Value) -> Vec<Scores> {
    json["methods"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|m| Scores {
                    method: m["method"].as_str().unwrap_or("?").to_string(),
                    images: m["images"].as_u64().unwrap_or(0),
                    psnr: m["psnr_db"].as_f64().unwrap_or(f64::NAN),
                    ssim: m["ssim"].as_f64().unwrap_or(f64::NAN),
                    nfe: m["nfe"].as_u64().unwrap_or(0),
                    note: m["note"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn find<'s>(rows: &'s [Scores], prefix: &str) -> Option<&'s Scores> {
    rows.iter().find(|r| r.method.starts_with(prefix))
}

/// "Intel(R) Xeon(R) ... (N cores available)".
fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{model}, nproc {n}")
}

fn f(v: &Value, ptr: &str) -> f64 {
    v.pointer(ptr).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// The Table 1 rows at one level, in display order: (label, scores).
fn table1_rows(level: &Table1Level) -> Result<Vec<(String, Scores)>> {
    let amb = methods(&read_json(&level.ambient.0)?);
    let cln = methods(&read_json(&level.clean.0)?);
    let mut rows = Vec::new();
    let mut take = |label: &str, from: &[Scores], prefix: &str| {
        if let Some(s) = find(from, prefix) {
            rows.push((
                label.to_string(),
                Scores {
                    method: s.method.clone(),
                    note: s.note.clone(),
                    ..*s
                },
            ));
        }
    };
    take("measurement (missing = 0)", &amb, "measurement");
    take("ambient, NFE = 1", &amb, "ambient");
    take("clean-trained, NFE = 1", &cln, "ambient");
    take("biharmonic inpainting", &amb, "biharmonic");
    take("TV inpainting", &amb, "tv");
    take("DPS, clean-trained", &amb, "DPS");
    Ok(rows)
}

impl Report<'_> {
    /// Writes `docs/results.md` and `docs/results/*.png`; returns the markdown's path.
    pub fn write(&self, docs: &Path) -> Result<PathBuf> {
        let figdir = docs.join("results");
        std::fs::create_dir_all(&figdir)
            .with_context(|| format!("{}: cannot create", figdir.display()))?;
        let mut md = String::new();
        self.header(&mut md);
        let facts1 = self.table1(&mut md, &figdir)?;
        let facts3 = self.fig3(&mut md, &figdir)?;
        let factsm = self.memorization(&mut md, &figdir)?;
        md.push_str("## Where these results differ from the paper\n\n");
        md.push_str("Generated from the numbers above by `ambient experiment paper`; each line states the paper's finding, the measured numbers and whether they agree.\n\n");
        if self.plan.smoke {
            md.push_str(
                "**Smoke budget: the verdicts below compare numbers that mean nothing.**\n\n",
            );
        }
        for line in facts1.iter().chain(&facts3).chain(&factsm) {
            let _ = writeln!(md, "- {line}");
        }
        let path = docs.join("results.md");
        ambient_cpu::io::atomic::write_bytes_atomic(&path, md.as_bytes())?;
        Ok(path)
    }

    fn header(&self, md: &mut String) {
        let p = self.plan;
        let s = p.seeds();
        md.push_str("# Ambient Diffusion at MNIST scale: the paper's three claims\n\n");
        md.push_str(
            "This file is written by `ambient experiment paper`; do not edit it by hand.\n\n",
        );
        if p.smoke {
            let _ = writeln!(
                md,
                "> **SMOKE BUDGET ({}): a test that the pipeline runs end to end. The models are barely trained and every number below means nothing.**\n",
                p.budget
            );
        } else if p.budget < 1.0 {
            let _ = writeln!(
                md,
                "> **Reduced budget ({}): fewer steps than the issue's minimum of 4000 per model.**\n",
                p.budget
            );
        }
        let args: Vec<String> = std::env::args().collect();
        md.push_str("## Setup\n\n");
        let _ = writeln!(md, "- Command: `{}`", args.join(" "));
        let _ = writeln!(
            md,
            "- Budget {}: {} training steps at batch {} per model, network {}{}, EMA weights; ambient training with further corruption delta = {DELTA}",
            p.budget,
            p.steps,
            p.batch,
            p.net,
            if p.net == Network::spec() {
                " (the spec config, `docs/ambient-unet-spec.md`)"
            } else {
                " (NOT the spec config)"
            }
        );
        let _ = writeln!(
            md,
            "- Data: the first {} MNIST training images (corrupted by random inpainting at p), {} held-out test measurements per p for restoration; memorization models on the first {MEMO_SUBSET} training images",
            p.train_images, p.restore_images
        );
        let _ = writeln!(
            md,
            "- Sampling: fixed-mask sampler (Euler), {} EDM steps; {} samples per model for the Fréchet distance (against {} test images), {} for memorization",
            p.sampler_steps, p.fd_samples, p.fd_test_images, p.memo_samples
        );
        let _ = writeln!(
            md,
            "- Seeds: training {}, training-data corruption {}, test-data corruption {}, sampling {}, DPS {}",
            s.train, s.train_data, s.test_data, s.sample, s.dps
        );
        let _ = writeln!(md, "- Machine: {}", machine());
        let _ = writeln!(
            md,
            "- Wall time: {:.1} min over all invocations' stages ({:.1} min in the invocation that wrote this file); the machine was shared with other work while this ran, so these are no benchmarks (those are in `benches/`)",
            self.timings.total() / 60.0,
            self.invocation_seconds / 60.0
        );
        let _ = writeln!(
            md,
            "- Evaluation classifier: `{}`\n",
            self.layout.classifier.display()
        );
        md.push_str("| model | training images | steps reached | training wall time (min) |\n| --- | --- | --- | --- |\n");
        let mut seen = Vec::new();
        let all = std::iter::once(p.clean_model())
            .chain(self.table1.iter().map(|l| p.ambient_model(l.p)))
            .chain(self.fig3.iter().map(|r| r.model))
            .chain(self.memo.iter().map(|r| r.model));
        for m in all {
            let key = p.model_key(&m);
            if seen.contains(&key) {
                continue;
            }
            let dir = self.layout.out.join("models").join(&key);
            let step = checkpoint_step(&dir)
                .ok()
                .flatten()
                .map_or("?".into(), |s| s.to_string());
            let secs = self
                .timings
                .seconds
                .get(&format!("train/{key}"))
                .copied()
                .unwrap_or(0.0);
            let _ = writeln!(
                md,
                "| {} (`{key}`) | {} | {step} | {:.1} |",
                m.label(),
                m.images,
                secs / 60.0
            );
            seen.push(key);
        }
        md.push('\n');
    }

    fn table1(&self, md: &mut String, figdir: &Path) -> Result<Vec<String>> {
        let p = self.plan;
        md.push_str("## Table 1 analogue: restoration in one network call\n\n");
        let _ = writeln!(
            md,
            "Held-out test measurements (random inpainting at p) restored by the ambient model trained at that p with one network call (sigma chosen on the measurements, no clean image), by the clean-trained model at the same mask and NFE = 1, by biharmonic and total-variation inpainting, and by DPS with the clean-trained model ({} steps, on the first {} measurements only). PSNR (dB) and SSIM against the clean test images.\n",
            p.dps_steps, p.dps_images
        );
        let mut facts = Vec::new();
        for level in &self.table1 {
            let rows = table1_rows(level)?;
            let _ = writeln!(md, "### p = {}\n", level.p);
            md.push_str("| method | images | PSNR (dB) | SSIM | NFE | note |\n| --- | --- | --- | --- | --- | --- |\n");
            for (label, s) in &rows {
                let _ = writeln!(
                    md,
                    "| {label} | {} | {:.2} | {:.4} | {} | {} |",
                    s.images, s.psnr, s.ssim, s.nfe, s.note
                );
            }
            let png = figdir.join(format!("restore-p{}.png", level.p));
            let labels = self.strip(level, &png)?;
            let _ = writeln!(
                md,
                "\n![restorations at p = {}](results/{})\n\nRows, top to bottom: {}.\n",
                level.p,
                png.file_name().unwrap_or_default().to_string_lossy(),
                labels.join("; ")
            );
            facts.push(table1_fact(level.p, &rows));
        }
        Ok(facts)
    }

    /// The restoration strip of one level; returns its row labels.
    fn strip(&self, level: &Table1Level, png: &Path) -> Result<Vec<String>> {
        let ds = crate::data::load(&level.data, None)?;
        let clean = crate::data::take(
            ambient_cpu::io::dataset::CorruptedDataset::load_idx(&self.layout.test_idx())?,
            Some(ds.n),
        );
        let cols = STRIP_COLS.min(ds.n);
        let mut rows = vec![
            ("clean test image".to_string(), clean.measurements),
            ("measurement".to_string(), ds.measurements.clone()),
        ];
        let (a, c) = (&level.ambient.1, &level.clean.1);
        for (label, path) in [
            ("ambient, NFE = 1", a.join("ambient.npy")),
            ("clean-trained, NFE = 1", c.join("ambient.npy")),
            ("biharmonic", a.join("biharmonic.npy")),
            ("TV", a.join("tv.npy")),
            ("DPS", a.join("dps.npy")),
        ] {
            let images = figures::load_images(&path)?;
            if images.len() >= cols * ds.image_len() {
                rows.push((label.to_string(), images));
            }
        }
        figures::restoration_strip(png, &rows, cols, (ds.c, ds.h, ds.w))
    }

    fn fig3(&self, md: &mut String, figdir: &Path) -> Result<Vec<String>> {
        let p = self.plan;
        md.push_str("## Figure 3 analogue: generation quality against corruption\n\n");
        let _ = writeln!(
            md,
            "Fréchet distance between the project classifier's 128-d features of {} fixed-mask samples and of {} clean test images (lower is better). The floor is the same distance for as many clean training images as samples: what a perfect generator would score at this sample size.\n",
            p.fd_samples, p.fd_test_images
        );
        md.push_str("| model | p | Fréchet distance | floor | predicted classes of the samples |\n| --- | --- | --- | --- | --- |\n");
        let mut fds = Vec::new();
        for r in &self.fig3 {
            let j = read_json(&r.json)?;
            let fd = f(&j, "/frechet_distance");
            let _ = writeln!(
                md,
                "| {} | {} | {fd:.3} | {:.3} | {} |",
                r.model.mode,
                r.model.p,
                f(&j, "/frechet_floor_train_vs_test"),
                j["predicted_classes"]
            );
            fds.push(Fig3Point {
                model: r.model,
                fd,
                top_share: top_class_share(&j["predicted_classes"]),
            });
        }
        md.push_str("\nSamples (the first 64, or all if fewer, of each model):\n\n");
        for r in &self.fig3 {
            let name = format!("samples-{}-p{}.png", r.model.mode, r.model.p);
            figures::sample_grid(&r.samples.join("samples.npy"), &figdir.join(&name))?;
            let _ = writeln!(
                md,
                "- {}: ![{}](results/{name})",
                r.model.label(),
                r.model.label()
            );
        }
        md.push('\n');
        Ok(fig3_facts(&fds))
    }

    fn memorization(&self, md: &mut String, figdir: &Path) -> Result<Vec<String>> {
        let p = self.plan;
        md.push_str("## Memorization: clean vs ambient training on a small subset\n\n");
        let _ = writeln!(
            md,
            "Both models trained on the first {MEMO_SUBSET} training images (ambient on their corruption at p = {MEMO_P}) with the same budget; {} samples each. For every sample, the cosine similarity to its nearest training image (top-1), in pixel space (ink) and in the classifier's features (centred on the training mean). The reference row holds as many held-out test images, which no model has seen. A near copy: top-1 similarity above {MEMO_THRESHOLD}.\n",
            p.memo_samples
        );
        md.push_str("| model | space | 5% | median | 95% | max | above threshold | test reference: median | test reference: above threshold |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
        let mut above = Vec::new();
        let mut hists = Vec::new();
        for r in &self.memo {
            let j = read_json(&r.json)?;
            for space in ["pixels", "features"] {
                let s = |k: &str| f(&j, &format!("/memorization/{space}/stats/{k}"));
                let rs = |k: &str| f(&j, &format!("/memorization/{space}/reference_stats/{k}"));
                let _ = writeln!(
                    md,
                    "| {} | {space} | {:.4} | {:.4} | {:.4} | {:.4} | {:.1}% | {:.4} | {:.1}% |",
                    r.model.label(),
                    s("q05"),
                    s("q50"),
                    s("q95"),
                    s("max"),
                    100.0 * s("fraction_above"),
                    rs("q50"),
                    100.0 * rs("fraction_above")
                );
                above.push(Near {
                    model: r.model,
                    space,
                    above: s("fraction_above"),
                    reference_above: rs("fraction_above"),
                    median: s("q50"),
                    reference_median: rs("q50"),
                });
                // `eval samples` wrote it beside the JSON, in the directory of the same name.
                let from = r
                    .json
                    .with_extension("")
                    .join(format!("memorization_{space}.png"));
                let name = format!("memorization-{}-{space}.png", r.model.mode);
                figures::copy_figure(&from, &figdir.join(&name))?;
                hists.push(format!(
                    "- {}, {space}: ![top-1 similarity, {}, {space}](results/{name})",
                    r.model.label(),
                    r.model.label()
                ));
            }
        }
        md.push_str("\nHistograms of the samples' top-1 similarity (50 bins over [0, 1]):\n\n");
        for h in hists {
            let _ = writeln!(md, "{h}");
        }
        md.push_str("\nSamples:\n\n");
        for r in &self.memo {
            let name = format!("samples-memo-{}.png", r.model.mode);
            figures::sample_grid(&r.samples.join("samples.npy"), &figdir.join(&name))?;
            let _ = writeln!(
                md,
                "- {} on {MEMO_SUBSET} images: ![samples](results/{name})",
                r.model.label()
            );
        }
        md.push('\n');
        Ok(memo_facts(&above))
    }
}

fn verdict(agrees: bool) -> &'static str {
    if agrees {
        "agrees"
    } else {
        "differs"
    }
}

/// Table 1's finding: one-step ambient restoration beats classical inpainting and the clean
/// model used at NFE = 1, and is competitive with DPS at a fraction of its network calls.
fn table1_fact(p: f32, rows: &[(String, Scores)]) -> String {
    let get = |label: &str| rows.iter().find(|r| r.0.starts_with(label)).map(|r| &r.1);
    let (Some(a), Some(c)) = (get("ambient"), get("clean-trained")) else {
        return format!("p = {p}: the ambient or clean-trained restoration is missing.");
    };
    let mut parts = vec![format!(
        "p = {p}: ambient NFE = 1 restoration {:.2} dB / SSIM {:.3}; clean-trained at NFE = 1 {:.2} dB / {:.3} ({})",
        a.psnr,
        a.ssim,
        c.psnr,
        c.ssim,
        verdict(a.psnr > c.psnr)
    )];
    for label in ["biharmonic", "TV"] {
        if let Some(b) = get(label) {
            parts.push(format!(
                "{label} {:.2} dB / {:.3} ({})",
                b.psnr,
                b.ssim,
                verdict(a.psnr > b.psnr)
            ));
        }
    }
    if let Some(d) = get("DPS") {
        parts.push(format!(
            "DPS {:.2} dB / {:.3} at NFE = {} on {} images ({} with \"ambient NFE = 1 is at least as good as DPS\")",
            d.psnr,
            d.ssim,
            d.nfe,
            d.images,
            verdict(a.psnr >= d.psnr)
        ));
    }
    format!(
        "{}. Claim checked: one network call of the ambient model restores better than classical inpainting and than the clean-trained model at NFE = 1, and competes with DPS at many more calls; \"agrees\" marks each baseline the ambient model beats in PSNR.",
        parts.join("; ")
    )
}

/// One model of Figure 3: its Fréchet distance and the share of its samples in the class the
/// classifier predicts most often (1/10 for a generator spread evenly over the digits; a
/// collapsed one piles its samples into one class).
#[derive(Clone, Copy)]
struct Fig3Point {
    model: ModelSpec,
    fd: f64,
    top_share: f64,
}

/// The largest entry of a class histogram over its total (NaN when it is missing or empty).
fn top_class_share(classes: &Value) -> f64 {
    let counts: Vec<f64> = classes
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let total: f64 = counts.iter().sum();
    if total > 0.0 {
        counts.iter().cloned().fold(0.0, f64::max) / total
    } else {
        f64::NAN
    }
}

/// Figure 3's finding: naive training collapses as p grows, ambient degrades gracefully. In
/// the paper's figure both curves start from the clean model at p = 0, where the two trainings
/// coincide, so growth is measured from there; growth between the lowest and highest p of
/// the run is reported too, with the naive model's state at the lowest p beside it (a model
/// already collapsed there has little left to grow).
fn fig3_facts(points: &[Fig3Point]) -> Vec<String> {
    let get = |mode: &str, p: f32| {
        points
            .iter()
            .find(|r| r.model.mode == mode && r.model.p == p)
    };
    let clean = get("clean", 0.0);
    let mut levels: Vec<f32> = points
        .iter()
        .filter(|r| r.model.mode != "clean")
        .map(|r| r.model.p)
        .collect();
    levels.sort_by(f32::total_cmp);
    levels.dedup();
    // Levels with both a naive and an ambient model: (p, naive, ambient).
    let paired: Vec<(f32, Fig3Point, Fig3Point)> = levels
        .iter()
        .filter_map(|&p| Some((p, *get("naive", p)?, *get("ambient", p)?)))
        .collect();
    // One value per paired level, formatted and comma-separated.
    let per_level = |show: &dyn Fn(&Fig3Point) -> String, pick_naive: bool| {
        paired
            .iter()
            .map(|(_, n, a)| show(if pick_naive { n } else { a }))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    for (p, n, a) in &paired {
        out.push(format!(
            "Fréchet distance at p = {p}: naive {:.3} vs ambient {:.3} (clean {:.3}); naive / ambient = {:.2}. Paper: naive is worse than ambient at high corruption ({}).",
            n.fd,
            a.fd,
            clean.map_or(f64::NAN, |c| c.fd),
            n.fd / a.fd,
            verdict(n.fd > a.fd)
        ));
    }
    if let (Some(c), false) = (clean, paired.is_empty()) {
        let ps = paired
            .iter()
            .map(|(p, ..)| p.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let ratio = |r: &Fig3Point| format!("{:.2}x", r.fd / c.fd);
        out.push(format!(
            "Against the clean model (p = 0, Fréchet distance {:.3}), where naive and ambient training coincide: at p = {ps} the naive Fréchet distance is {} the clean one, the ambient one {}. Paper: naive collapses as p grows, ambient degrades gracefully ({}: naive's ratio is above ambient's at every level).",
            c.fd,
            per_level(&ratio, true),
            per_level(&ratio, false),
            verdict(paired.iter().all(|(_, n, a)| n.fd > a.fd))
        ));
        let share = |r: &Fig3Point| format!("{:.1}%", 100.0 * r.top_share);
        out.push(format!(
            "Share of the samples in the class the classifier predicts most often (10% for samples spread evenly over the digits; a collapsed generator piles into one): clean {:.1}%; at p = {ps} naive {}, ambient {} ({}: naive's share is above ambient's at every level).",
            100.0 * c.top_share,
            per_level(&share, true),
            per_level(&share, false),
            verdict(paired.iter().all(|(_, n, a)| n.top_share > a.top_share))
        ));
    }
    if let (Some((lo, n0, a0)), Some((hi, n1, a1))) = (paired.first(), paired.last()) {
        if lo < hi {
            let at_lo = clean.map_or(String::new(), |c| {
                format!(
                    "; at p = {lo} the naive Fréchet distance is already {:.2}x the clean model's, the ambient one {:.2}x",
                    n0.fd / c.fd,
                    a0.fd / c.fd
                )
            });
            out.push(format!(
                "From p = {lo} to p = {hi} the naive Fréchet distance grows {:.2}x and the ambient one {:.2}x{at_lo}. Paper: naive degrades faster than ambient as p grows ({} within this range).",
                n1.fd / n0.fd,
                a1.fd / a0.fd,
                verdict(n1.fd / n0.fd > a1.fd / a0.fd)
            ));
        }
    }
    out
}

/// One model's top-1 similarity summary in one space.
struct Near {
    model: ModelSpec,
    space: &'static str,
    above: f64,
    reference_above: f64,
    median: f64,
    reference_median: f64,
}

/// The memorization finding: a clean model trained on a few images copies them; an ambient
/// model trained on their corruption does not.
fn memo_facts(rows: &[Near]) -> Vec<String> {
    let mut out = Vec::new();
    for space in ["pixels", "features"] {
        let get = |mode: &str| {
            rows.iter()
                .find(|r| r.model.mode == mode && r.space == space)
        };
        if let (Some(c), Some(a)) = (get("clean"), get("ambient")) {
            out.push(format!(
                "Top-1 similarity to the {MEMO_SUBSET}-image subset ({space}): median clean {:.4} vs ambient {:.4} (held-out test images {:.4}); near copies above {MEMO_THRESHOLD}: clean {:.1}% vs ambient {:.1}% of samples (held-out test images: {:.1}%). Paper: the clean model memorizes, the ambient one far less ({} on near copies, {} on medians).",
                c.median,
                a.median,
                c.reference_median,
                100.0 * c.above,
                100.0 * a.above,
                100.0 * c.reference_above,
                verdict(c.above > a.above),
                verdict(c.median > a.median)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(mode: &'static str, p: f32) -> ModelSpec {
        ModelSpec {
            mode,
            p,
            images: 10,
        }
    }

    fn pt(mode: &'static str, p: f32, fd: f64, top_share: f64) -> Fig3Point {
        Fig3Point {
            model: m(mode, p),
            fd,
            top_share,
        }
    }

    #[test]
    fn fig3_verdict_follows_the_numbers() {
        // Naive 4x worse than ambient at 0.8 and growing 4x from 0.6 vs ambient 1.25x; against
        // the clean model (FD 2): naive 2.5x and 10x, ambient 2x and 2.5x.
        let pts = [
            pt("clean", 0.0, 2.0, 0.1),
            pt("ambient", 0.6, 4.0, 0.12),
            pt("naive", 0.6, 5.0, 0.3),
            pt("ambient", 0.8, 5.0, 0.15),
            pt("naive", 0.8, 20.0, 0.9),
        ];
        let f = fig3_facts(&pts);
        assert_eq!(f.len(), 5, "{f:?}");
        assert!(
            f[1].contains("naive 20.000 vs ambient 5.000 (clean 2.000); naive / ambient = 4.00"),
            "{}",
            f[1]
        );
        assert!(f[1].ends_with("(agrees)."), "{}", f[1]);
        assert!(
            f[2].contains("at p = 0.6, 0.8 the naive Fréchet distance is 2.50x, 10.00x the clean one, the ambient one 2.00x, 2.50x"),
            "{}",
            f[2]
        );
        assert!(f[2].contains("(agrees:"), "{}", f[2]);
        assert!(
            f[3].contains(
                "clean 10.0%; at p = 0.6, 0.8 naive 30.0%, 90.0%, ambient 12.0%, 15.0% (agrees:"
            ),
            "{}",
            f[3]
        );
        assert!(
            f[4].contains("grows 4.00x and the ambient one 1.25x; at p = 0.6 the naive Fréchet distance is already 2.50x the clean model's, the ambient one 2.00x"),
            "{}",
            f[4]
        );
        assert!(f[4].ends_with("(agrees within this range)."), "{}", f[4]);
        // The reverse orderings must say so: naive better at 0.8, and a naive model already
        // collapsed at 0.6 that grows less than the ambient one within the range.
        let rev = [
            pt("clean", 0.0, 2.0, 0.1),
            pt("ambient", 0.6, 4.0, 0.5),
            pt("naive", 0.6, 30.0, 0.2),
            pt("ambient", 0.8, 20.0, 0.5),
            pt("naive", 0.8, 15.0, 0.2),
        ];
        let f = fig3_facts(&rev);
        assert!(f[0].ends_with("(agrees)."), "{}", f[0]);
        assert!(f[1].ends_with("(differs)."), "{}", f[1]);
        assert!(f[2].contains("(differs:"), "{}", f[2]);
        assert!(f[3].contains("(differs:"), "{}", f[3]);
        assert!(f[4].ends_with("(differs within this range)."), "{}", f[4]);
    }

    #[test]
    fn top_class_share_of_a_histogram() {
        assert_eq!(top_class_share(&serde_json::json!([1, 6, 3])), 0.6);
        assert!(top_class_share(&serde_json::json!([])).is_nan());
        assert!(top_class_share(&Value::Null).is_nan());
    }

    #[test]
    fn memo_verdict_compares_clean_with_ambient() {
        let near = |mode, above, median| Near {
            model: m(mode, 0.8),
            space: "pixels",
            above,
            reference_above: 0.01,
            median,
            reference_median: 0.8,
        };
        let rows = [near("clean", 0.30, 0.97), near("ambient", 0.02, 0.85)];
        let f = memo_facts(&rows);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].contains("median clean 0.9700 vs ambient 0.8500 (held-out test images 0.8000)"),
            "{}",
            f[0]
        );
        assert!(
            f[0].contains("clean 30.0% vs ambient 2.0% of samples (held-out test images: 1.0%)")
        );
        assert!(f[0].ends_with("(agrees on near copies, agrees on medians)."));
        let rows = [near("clean", 0.0, 0.6), near("ambient", 0.0, 0.7)];
        assert!(memo_facts(&rows)[0].ends_with("(differs on near copies, differs on medians)."));
    }

    #[test]
    fn table1_verdict_per_baseline() {
        let s = |psnr: f64, nfe: u64| Scores {
            method: String::new(),
            images: 4,
            psnr,
            ssim: 0.5,
            nfe,
            note: String::new(),
        };
        let rows = vec![
            ("ambient, NFE = 1".to_string(), s(20.0, 1)),
            ("clean-trained, NFE = 1".to_string(), s(12.0, 1)),
            ("biharmonic inpainting".to_string(), s(21.0, 0)),
            ("DPS, clean-trained".to_string(), s(19.0, 100)),
        ];
        let f = table1_fact(0.8, &rows);
        assert!(
            f.contains("clean-trained at NFE = 1 12.00 dB / 0.500 (agrees)"),
            "{f}"
        );
        assert!(f.contains("biharmonic 21.00 dB / 0.500 (differs)"), "{f}");
        assert!(
            f.contains("DPS 19.00 dB / 0.500 at NFE = 100 on 4 images (agrees"),
            "{f}"
        );
    }
}
