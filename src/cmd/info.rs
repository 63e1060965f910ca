//! `ambient info`: what a weight file or checkpoint holds.

use std::path::PathBuf;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// A weight file (.safetensors) or a training checkpoint.
    pub file: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let d = ambient_cpu::io::weights::describe(&a.file)?;
    println!("{d}");
    Ok(())
}
