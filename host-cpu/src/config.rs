//! Network and corruption configuration, as stored in a weight file's `__metadata__["config"]`
//! (docs/ambient-unet-spec.md, "Weight file").

use serde::{Deserialize, Serialize};

/// The architecture of AmbientUNet v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UNetConfig {
    pub img_channels: usize,
    pub img_resolution: usize,
    pub ch: usize,
    pub mult: Vec<usize>,
    pub blocks: usize,
    pub groups: usize,
    pub sigma_data: f32,
}

impl UNetConfig {
    /// The spec configuration: C = 1, 28 x 28, ch 32, mult [1, 2, 2], blocks 1, groups 8.
    pub fn spec_mnist() -> Self {
        UNetConfig {
            img_channels: 1,
            img_resolution: 28,
            ch: 32,
            mult: vec![1, 2, 2],
            blocks: 1,
            groups: 8,
            sigma_data: 0.5,
        }
    }

    /// Checks the constraints the network needs; the message says which one fails.
    pub fn validate(&self) -> Result<(), String> {
        if self.img_channels == 0 || self.img_resolution == 0 || self.ch == 0 || self.blocks == 0 {
            return Err("img_channels, img_resolution, ch and blocks must be positive".into());
        }
        if self.mult.is_empty() || self.mult.contains(&0) {
            return Err("mult must be a non-empty list of positive integers".into());
        }
        if self.mult.len() > 16 {
            return Err(format!(
                "mult has {} levels; at most 16 are supported",
                self.mult.len()
            ));
        }
        if self.groups == 0 {
            return Err("groups must be positive".into());
        }
        if !self.ch.is_multiple_of(2) {
            return Err(format!("ch = {} must be even (noise embedding)", self.ch));
        }
        let levels = self.mult.len() as u32;
        let div = 1usize << (levels - 1);
        if !self.img_resolution.is_multiple_of(div) {
            return Err(format!(
                "img_resolution {} must be divisible by 2^(levels-1) = {div}",
                self.img_resolution
            ));
        }
        for &m in &self.mult {
            if !(self.ch * m).is_multiple_of(self.groups) {
                return Err(format!(
                    "channel count {} is not divisible by groups = {}",
                    self.ch * m,
                    self.groups
                ));
            }
        }
        if !self.ch.is_multiple_of(self.groups) {
            return Err(format!(
                "ch = {} not divisible by groups = {}",
                self.ch, self.groups
            ));
        }
        if !(self.sigma_data > 0.0 && self.sigma_data.is_finite()) {
            return Err("sigma_data must be positive".into());
        }
        Ok(())
    }

    /// Channels at level `l`: `ch * mult[l]`.
    pub fn level_channels(&self, l: usize) -> usize {
        self.ch * self.mult[l]
    }
}

/// How the model was trained: corruption kind and parameters, and the training mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorruptionMeta {
    /// "random", "box" or "gaussian".
    pub kind: String,
    pub p: f32,
    /// Further-corruption probability; 0 for the naive baseline.
    pub delta: f32,
    /// Box side in pixels (box only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#box: Option<usize>,
    /// "ambient", "naive" or "clean".
    pub mode: String,
}

/// The `config` object of a weight file: the architecture, `precond`, and the corruption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    #[serde(flatten)]
    pub unet: UNetConfig,
    pub precond: String,
    #[serde(flatten)]
    pub corruption: CorruptionMeta,
}

pub const PRECOND: &str = "mask-aware-edm";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_bad_configs_without_panicking() {
        assert!(UNetConfig::spec_mnist().validate().is_ok());
        let bad = |f: fn(&mut UNetConfig)| {
            let mut c = UNetConfig::spec_mnist();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(|c| c.groups = 0).contains("groups"));
        assert!(bad(|c| c.mult = vec![1; 70]).contains("levels"));
        assert!(bad(|c| c.ch = 31).contains("even"));
        assert!(bad(|c| c.img_resolution = 30).contains("divisible"));
        assert!(bad(|c| c.groups = 5).contains("groups"));
        assert!(bad(|c| c.sigma_data = f32::NAN).contains("sigma_data"));
        assert!(bad(|c| c.mult = vec![]).contains("mult"));
    }
}
