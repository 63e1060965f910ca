//! Offline evaluation of restorations and samples for the paper-claims report: SSIM, classical
//! inpainting baselines (harmonic, biharmonic), DPS with a clean-trained model, a small MNIST
//! classifier whose penultimate features feed the Fréchet distance, and memorization statistics
//! (top-1 cosine similarity to the training set) with a histogram PNG.

pub mod classifier;
pub mod classifier_file;
pub mod classifier_train;
pub mod dps;
pub mod error;
pub mod frechet;
pub mod histogram;
pub mod inpaint;
pub mod linalg;
pub mod memorization;
pub mod ssim;
pub mod tv_inpaint;

pub use error::EvalError;
