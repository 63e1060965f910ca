//! `ambient experiment paper` end to end on a tiny network and a tiny budget: it must write a
//! results.md with every section, table and figure it promises into a temporary directory,
//! label the run a smoke budget, and on a rerun find every stage cached (resumability).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ambient-exp-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn paper(out: &Path, docs: &Path) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mnist, classifier) = (
        root.join("data/mnist"),
        root.join("models/mnist_classifier.safetensors"),
    );
    let args = [
        "experiment",
        "paper",
        "--budget",
        "0.0005", // 2 steps per model
        "--out",
        out.to_str().unwrap(),
        "--docs",
        docs.to_str().unwrap(),
        "--mnist",
        mnist.to_str().unwrap(),
        "--classifier",
        classifier.to_str().unwrap(),
        "--ch",
        "8",
        "--mult",
        "1",
        "--groups",
        "4",
        "--train-images",
        "300",
        "--restore-images",
        "8",
        "--dps-images",
        "2",
        "--dps-steps",
        "2",
        "--fd-samples",
        "4",
        "--memo-samples",
        "4",
        "--sampler-steps",
        "2",
        "--fd-test-images",
        "100",
    ];
    Command::new(env!("CARGO_BIN_EXE_ambient"))
        .args(args)
        .current_dir(root)
        .output()
        .expect("run ambient")
}

/// The PSNR column of the Table 1 row starting with `method` in the section of level `p`.
fn psnr_at(md: &str, p: &str, method: &str) -> f64 {
    let section = md
        .split(&format!("### p = {p}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no section for p = {p}"));
    let row = section
        .lines()
        .find(|l| l.starts_with(&format!("| {method}")))
        .unwrap_or_else(|| panic!("no row {method:?} at p = {p}"));
    row.split('|').nth(3).unwrap().trim().parse().unwrap()
}

#[test]
fn paper_writes_every_section_and_figure_and_resumes() {
    let dir = tmp("paper");
    let (out, docs) = (dir.join("run"), dir.join("docs"));
    let first = paper(&out, &docs);
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "stderr: {err}");
    let md = std::fs::read_to_string(docs.join("results.md")).unwrap();
    for needle in [
        "SMOKE BUDGET",
        "NOT the spec config",
        "## Setup",
        "- Machine: ",
        "- Seeds: training 0",
        "2 training steps at batch 8",
        "## Table 1 analogue",
        "### p = 0.6",
        "### p = 0.8",
        "### p = 0.9",
        "| DPS, clean-trained | 2 |",
        "| clean-trained, NFE = 1 | 8 |",
        "## Figure 3 analogue",
        "| naive | 0.8 |",
        "| ambient | 0.6 |",
        "## Memorization",
        "| ambient p=0.8 | pixels |",
        "| clean | features |",
        "## Where these results differ from the paper",
        "Fréchet distance at p = 0.8: naive ",
        "Against the clean model (p = 0, Fréchet distance ",
        "Share of the samples in the class the classifier predicts most often",
        "From p = 0.6 to p = 0.8 the naive Fréchet distance grows ",
        "Top-1 similarity to the 300-image subset (pixels)",
    ] {
        assert!(md.contains(needle), "results.md lacks {needle:?}:\n{md}");
    }
    // Every figure the document links exists and is a PNG.
    let links: Vec<&str> = md
        .split("](results/")
        .skip(1)
        .map(|s| s.split(')').next().unwrap())
        .collect();
    // 3 strips + 5 Figure 3 grids + 2 memorization grids + 4 histograms.
    assert_eq!(links.len(), 14, "{links:?}");
    for l in links {
        let bytes = std::fs::read(docs.join("results").join(l)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{l}");
    }
    // The numbers are real evaluations: biharmonic inpainting of MNIST at p = 0.6 beats
    // leaving the missing pixels at 0 by a wide margin whatever the (untrained) models do
    // (about 20 vs 8.5 dB on these digits).
    assert!(psnr_at(&md, "0.6", "biharmonic") > psnr_at(&md, "0.6", "measurement") + 5.0);

    // A rerun trains, samples and evaluates nothing again.
    let second = paper(&out, &docs);
    let err2 = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "stderr: {err2}");
    assert!(!err2.contains(": running"), "a stage ran again:\n{err2}");
    assert!(!err2.contains("steps\n"), "a model trained again:\n{err2}");
    assert!(err2.contains("cached"), "{err2}");
    let md2 = std::fs::read_to_string(docs.join("results.md")).unwrap();
    let tables = |m: &str| -> Vec<String> {
        m.lines()
            .filter(|l| l.starts_with('|') || l.starts_with("- Fréchet"))
            .map(String::from)
            .collect()
    };
    assert_eq!(tables(&md), tables(&md2));
    let _ = std::fs::remove_dir_all(&dir);
}
