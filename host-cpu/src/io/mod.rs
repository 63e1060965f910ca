//! The CPU host's files: atomic writes, weight files and checkpoints (safetensors), datasets
//! (IDX, `.npy`, PNG folders, corrupted-dataset directories) and PNG grids for people.

pub mod atomic;
pub mod checkpoint;
pub mod corrupted_dir;
pub mod dataset;
pub mod idx;
pub mod model_config;
pub mod npy;
pub mod pixels;
pub mod png_folder;
pub mod png_grid;
pub mod safetensors_file;
pub mod weights;

pub use dataset::CorruptedDataset;
