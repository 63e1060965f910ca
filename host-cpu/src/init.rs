//! Initial weights for AmbientUNet v1: PyTorch's defaults (uniform in +-1/sqrt(fan_in) for the
//! weight, gate and bias of every convolution and linear layer; GroupNorm weight 1, bias 0),
//! except that `conv2.weight` of every ResBlock and `out_conv.weight` start at zero, as the
//! spec requires. Deterministic from the rng: tensors are drawn in layout order.

use crate::config::UNetConfig;
use crate::params::{spec_layout, ParamStore};
use ambient_core::AmbientRng;

/// Fresh parameters for `cfg` (layout of `spec_layout(cfg)`).
pub fn init_params(cfg: &UNetConfig, rng: &mut AmbientRng) -> ParamStore {
    let layout = spec_layout(cfg);
    let mut store = ParamStore::zeros(&layout);
    for p in store.params.iter_mut() {
        let (prefix, kind) = p.name.rsplit_once('.').expect("names are prefix.kind");
        let owner = layout
            .iter()
            .find(|(n, _)| n == &format!("{prefix}.weight"))
            .map(|(_, s)| s.clone())
            .expect("every tensor belongs to a layer with a weight");
        let is_norm = owner.len() == 1;
        if is_norm {
            let v = if kind == "weight" { 1.0 } else { 0.0 };
            p.data.fill(v);
            continue;
        }
        if kind == "weight" && (prefix.ends_with(".conv2") || prefix == "out_conv") {
            continue; // zero-initialised: each ResBlock starts as its skip path, F as 0.
        }
        // fan_in = in features (linear [out, in]) or cin k k (conv [cout, cin, k, k]).
        let fan_in: usize = owner[1..].iter().product();
        let bound = 1.0 / (fan_in as f32).sqrt();
        for v in p.data.iter_mut() {
            *v = (2.0 * rng.uniform() - 1.0) * bound;
        }
    }
    store
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_follows_the_spec_and_is_deterministic() {
        let cfg = UNetConfig::spec_mnist();
        let a = init_params(&cfg, &mut AmbientRng::new(7));
        let b = init_params(&cfg, &mut AmbientRng::new(7));
        assert_eq!(a, b);
        let c = init_params(&cfg, &mut AmbientRng::new(8));
        assert_ne!(a, c);
        for p in &a.params {
            let zero = p.name.ends_with("conv2.weight") || p.name == "out_conv.weight";
            if zero {
                assert!(p.data.iter().all(|&v| v == 0.0), "{}", p.name);
            } else if p.name.contains("norm") {
                let want = if p.name.ends_with("weight") { 1.0 } else { 0.0 };
                assert!(p.data.iter().all(|&v| v == want), "{}", p.name);
            } else {
                // in_conv: fan_in = 2C * 9 = 18, bound 1/sqrt(18); spread over the range.
                let fan_in: usize = if p.name.starts_with("emb") || p.name.contains("emb_proj") {
                    a.get(&p.name.replace("bias", "weight")).unwrap().shape[1]
                } else {
                    a.get(
                        &p.name
                            .replace(".bias", ".weight")
                            .replace(".gate", ".weight"),
                    )
                    .unwrap()
                    .shape[1..]
                        .iter()
                        .product()
                };
                let bound = 1.0 / (fan_in as f32).sqrt();
                let max = p.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                assert!(max <= bound, "{}: {max} > {bound}", p.name);
                if p.data.len() >= 32 {
                    // 32 uniform draws all within half the bound: probability 2^-32.
                    assert!(max > 0.5 * bound, "{}: {max} vs {bound}", p.name);
                }
            }
        }
    }
}
