//! The parameter store: every weight tensor of AmbientUNet by its spec name, in one ordered
//! list. The network reads its weights from here and writes gradients into a store of the same
//! layout; the optimiser, EMA, weight files and checkpoints all work on this type.

use crate::config::UNetConfig;

/// One named tensor (PyTorch layout: conv [cout, cin, kh, kw], linear [out, in]).
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// All parameters in the spec's canonical order (see [`spec_layout`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamStore {
    pub params: Vec<Param>,
}

impl ParamStore {
    /// All-zero tensors of `layout`.
    pub fn zeros(layout: &[(String, Vec<usize>)]) -> Self {
        ParamStore {
            params: layout
                .iter()
                .map(|(name, shape)| Param {
                    name: name.clone(),
                    shape: shape.clone(),
                    data: vec![0.0; shape.iter().product()],
                })
                .collect(),
        }
    }

    /// A store of the same names and shapes, all zeros (e.g. for gradients).
    pub fn zeros_like(&self) -> Self {
        ParamStore {
            params: self
                .params
                .iter()
                .map(|p| Param {
                    name: p.name.clone(),
                    shape: p.shape.clone(),
                    data: vec![0.0; p.data.len()],
                })
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Param> {
        self.params.iter_mut().find(|p| p.name == name)
    }

    /// Index of `name` in the ordered list.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }

    /// Total number of scalars.
    pub fn num_scalars(&self) -> usize {
        self.params.iter().map(|p| p.data.len()).sum()
    }

    /// Sets every value to zero (keeps the allocation).
    pub fn zero(&mut self) {
        self.params.iter_mut().for_each(|p| p.data.fill(0.0));
    }
}

/// Names and shapes of every tensor of AmbientUNet v1 for `cfg`, in the order the spec lists
/// them: the noise embedding, `in_conv`, the encoder blocks, `mid`, the decoder blocks, then
/// `out_norm` and `out_conv`. A ResBlock's `skip.*` exists only where cin != cout.
pub fn spec_layout(cfg: &UNetConfig) -> Vec<(String, Vec<usize>)> {
    let ch = cfg.ch;
    let c = cfg.img_channels;
    let emb = 4 * ch;
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    let mut push = |name: String, shape: Vec<usize>| out.push((name, shape));
    push("emb.fc1.weight".into(), vec![emb, ch]);
    push("emb.fc1.bias".into(), vec![emb]);
    push("emb.fc2.weight".into(), vec![emb, emb]);
    push("emb.fc2.bias".into(), vec![emb]);
    gated_conv(&mut push, "in_conv", 2 * c, ch, 3);
    let levels = cfg.mult.len();
    let mut cur = ch;
    let mut skips = Vec::new();
    for l in 0..levels {
        let cl = cfg.level_channels(l);
        for b in 0..cfg.blocks {
            resblock(&mut push, &format!("enc.{l}.{b}"), cur, cl, emb);
            cur = cl;
        }
        skips.push(cur);
    }
    resblock(&mut push, "mid", cur, cur, emb);
    for l in (0..levels).rev() {
        let cl = cfg.level_channels(l);
        for b in 0..cfg.blocks {
            let cin = if b == 0 { cur + skips[l] } else { cur };
            resblock(&mut push, &format!("dec.{l}.{b}"), cin, cl, emb);
            cur = cl;
        }
    }
    push("out_norm.weight".into(), vec![cur]);
    push("out_norm.bias".into(), vec![cur]);
    gated_conv(&mut push, "out_conv", cur, c, 3);
    out
}

fn gated_conv(
    push: &mut impl FnMut(String, Vec<usize>),
    p: &str,
    cin: usize,
    cout: usize,
    k: usize,
) {
    push(format!("{p}.weight"), vec![cout, cin, k, k]);
    push(format!("{p}.gate"), vec![cout, cin, k, k]);
    push(format!("{p}.bias"), vec![cout]);
}

fn resblock(
    push: &mut impl FnMut(String, Vec<usize>),
    p: &str,
    cin: usize,
    cout: usize,
    emb: usize,
) {
    push(format!("{p}.norm1.weight"), vec![cin]);
    push(format!("{p}.norm1.bias"), vec![cin]);
    gated_conv(push, &format!("{p}.conv1"), cin, cout, 3);
    push(format!("{p}.emb_proj.weight"), vec![cout, emb]);
    push(format!("{p}.emb_proj.bias"), vec![cout]);
    push(format!("{p}.norm2.weight"), vec![cout]);
    push(format!("{p}.norm2.bias"), vec![cout]);
    gated_conv(push, &format!("{p}.conv2"), cout, cout, 3);
    if cin != cout {
        gated_conv(push, &format!("{p}.skip"), cin, cout, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_config_layout_counts() {
        let layout = spec_layout(&UNetConfig::spec_mnist());
        // Hand count for ch 32, mult [1,2,2], blocks 1, C = 1:
        // enc.0 32->32 (no skip), enc.1 32->64 (skip), enc.2 64->64, mid 64->64,
        // dec.2 128->64 (skip), dec.1 128->64 (skip), dec.0 96->32 (skip).
        let skips = layout
            .iter()
            .filter(|(n, _)| n.ends_with(".skip.weight"))
            .count();
        assert_eq!(skips, 4);
        let names: Vec<&str> = layout.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"dec.0.0.conv1.weight"));
        let dec0 = layout
            .iter()
            .find(|(n, _)| n == "dec.0.0.conv1.weight")
            .unwrap();
        assert_eq!(dec0.1, vec![32, 96, 3, 3]);
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), names.len(), "names are unique");
    }
}
