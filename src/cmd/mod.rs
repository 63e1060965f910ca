//! The subcommands of `ambient`, one file each.

pub mod corrupt;
pub mod eval;
pub mod experiment;
pub mod info;
pub mod quantize;
pub mod quickstart;
pub mod restore;
pub mod sample;
pub mod train;
