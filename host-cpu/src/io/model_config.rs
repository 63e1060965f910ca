//! The model config of weight files and checkpoints: what a valid [`ModelConfig`] is (beyond
//! the architecture checks of `UNetConfig::validate`), which fields two configs differ in, and
//! reading it from a file's `__metadata__["config"]`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use crate::config::{ModelConfig, PRECOND};
use crate::error::HostError;

/// Checks what the network and the samplers need of a config: the architecture
/// ([`crate::config::UNetConfig::validate`]), `precond`, and the corruption fields.
pub fn validate_model_config(cfg: &ModelConfig) -> Result<(), String> {
    cfg.unet.validate()?;
    if cfg.precond != PRECOND {
        return Err(format!(
            "precond = {:?}; only {PRECOND:?} is supported",
            cfg.precond
        ));
    }
    let c = &cfg.corruption;
    if !["random", "box", "gaussian"].contains(&c.kind.as_str()) {
        return Err(format!(
            "kind = {:?}; expected \"random\", \"box\" or \"gaussian\"",
            c.kind
        ));
    }
    if !["ambient", "naive", "clean"].contains(&c.mode.as_str()) {
        return Err(format!(
            "mode = {:?}; expected \"ambient\", \"naive\" or \"clean\"",
            c.mode
        ));
    }
    if !(0.0..=1.0).contains(&c.p) {
        return Err(format!("p = {} must be in [0, 1]", c.p));
    }
    if !(0.0..1.0).contains(&c.delta) {
        return Err(format!("delta = {} must be in [0, 1)", c.delta));
    }
    if c.kind == "box" {
        match c.r#box {
            Some(b) if b > 0 && b <= cfg.unet.img_resolution => {}
            other => {
                return Err(format!(
                "box = {other:?}; box inpainting needs a side between 1 and img_resolution = {}",
                cfg.unet.img_resolution
            ))
            }
        }
    }
    Ok(())
}

/// The fields in which `file` differs from `requested`, as "ch: file has 16, requested 32".
pub fn config_differences(file: &ModelConfig, requested: &ModelConfig) -> Vec<String> {
    let to_map = |c: &ModelConfig| -> BTreeMap<String, serde_json::Value> {
        match serde_json::to_value(c) {
            Ok(serde_json::Value::Object(m)) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    };
    let (a, b) = (to_map(file), to_map(requested));
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let show = |v: Option<&serde_json::Value>| v.map_or("nothing".to_string(), |v| v.to_string());
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{k}: file has {}, requested {}",
                show(a.get(k)),
                show(b.get(k))
            )
        })
        .collect()
}

/// The `config` metadata entry, parsed and validated.
pub(crate) fn config_from_metadata(
    path: &Path,
    meta: &HashMap<String, String>,
) -> Result<ModelConfig, HostError> {
    let text = meta.get("config").ok_or_else(|| {
        HostError::invalid(
            path,
            "no __metadata__[\"config\"]: not an ambient weight file",
        )
    })?;
    let cfg: ModelConfig = serde_json::from_str(text).map_err(|e| {
        HostError::invalid(
            path,
            format!("__metadata__[\"config\"] is not a model config: {e}"),
        )
    })?;
    validate_model_config(&cfg)
        .map_err(|e| HostError::invalid(path, format!("invalid config: {e}")))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CorruptionMeta, UNetConfig};

    fn spec() -> ModelConfig {
        ModelConfig {
            unet: UNetConfig::spec_mnist(),
            precond: PRECOND.into(),
            corruption: CorruptionMeta {
                kind: "random".into(),
                p: 0.8,
                delta: 0.1,
                r#box: None,
                mode: "ambient".into(),
            },
        }
    }

    #[test]
    fn corruption_fields_are_checked() {
        assert_eq!(validate_model_config(&spec()), Ok(()));
        let mut c = spec();
        c.corruption.kind = "box".into();
        assert!(validate_model_config(&c).unwrap_err().contains("box"));
        c.corruption.r#box = Some(29); // larger than the 28-pixel image
        assert!(validate_model_config(&c).is_err());
        c.corruption.r#box = Some(14);
        assert_eq!(validate_model_config(&c), Ok(()));
        let mut c = spec();
        c.corruption.delta = 1.0; // A~ would keep nothing
        assert!(validate_model_config(&c).unwrap_err().contains("delta"));
        let mut c = spec();
        c.corruption.mode = "fancy".into();
        assert!(validate_model_config(&c).unwrap_err().contains("mode"));
        let mut c = spec();
        c.unet.groups = 5; // 32 channels are not divisible by 5
        assert!(validate_model_config(&c).is_err());
    }

    #[test]
    fn differences_list_only_the_fields_that_differ() {
        let a = spec();
        assert!(config_differences(&a, &a).is_empty());
        let mut b = spec();
        b.unet.mult = vec![1, 2];
        b.corruption.r#box = Some(3);
        assert_eq!(
            config_differences(&a, &b),
            vec![
                "box: file has nothing, requested 3".to_string(),
                "mult: file has [1,2,2], requested [1,2]".to_string()
            ]
        );
    }
}
