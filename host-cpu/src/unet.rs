//! AmbientUNet v1, the network `F(F_in, c_noise)` of docs/ambient-unet-spec.md ("Network F"):
//! forward with a cache, backward to the parameters and to `F_in`, and the noise embedding.
//! The layer plan (channel counts and parameter indices) is resolved once from `spec_layout`.

use crate::config::UNetConfig;
use crate::nn::concat::{concat_channels, split_channels};
use crate::nn::embedding::{EmbeddingCache, NoiseEmbedding};
use crate::nn::gated_conv::{GatedConv, GatedConvCache};
use crate::nn::group_norm::{GroupNorm, GroupNormCache};
use crate::nn::recycle::recycle;
use crate::nn::resample::{
    avg_pool_2x2, avg_pool_2x2_backward, upsample_concat, upsample_nearest_2x_backward,
};
use crate::nn::resblock::{ResBlock, ResBlockCache};
use crate::params::{spec_layout, ParamStore};
use ndarray::{Array2, Array4};

/// The network for one configuration: its layers in the spec's order.
#[derive(Debug, Clone)]
pub struct UNet {
    cfg: UNetConfig,
    layout: Vec<(String, Vec<usize>)>,
    emb: NoiseEmbedding,
    in_conv: GatedConv,
    /// `enc[l][b]`, l = 0..L.
    enc: Vec<Vec<ResBlock>>,
    mid: ResBlock,
    /// `dec[l][b]`, indexed by level l = 0..L (run from L-1 down to 0).
    dec: Vec<Vec<ResBlock>>,
    out_norm: GroupNorm,
    out_conv: GatedConv,
}

/// Everything [`UNet::backward`] needs from a forward pass.
#[derive(Debug, Clone)]
pub struct ForwardCache {
    emb: EmbeddingCache,
    in_conv: GatedConvCache,
    enc: Vec<Vec<ResBlockCache>>,
    mid: ResBlockCache,
    /// Decoder caches by level l, like `UNet::dec`.
    dec: Vec<Vec<ResBlockCache>>,
    /// Per level: channels of `x` before `concat[x, skip_l]`.
    cat_channels: Vec<usize>,
    out_norm: GroupNormCache,
    out_conv: GatedConvCache,
}

impl UNet {
    /// The plan for `cfg` (checked with `cfg.validate()`).
    pub fn new(cfg: &UNetConfig) -> Result<UNet, String> {
        cfg.validate()?;
        let layout = spec_layout(cfg);
        let (ch, g, e) = (cfg.ch, cfg.groups, 4 * cfg.ch);
        let levels = cfg.mult.len();
        let mut cur = ch;
        let mut enc = Vec::new();
        let mut skips = Vec::new();
        for l in 0..levels {
            let cl = cfg.level_channels(l);
            let mut blocks = Vec::new();
            for b in 0..cfg.blocks {
                blocks.push(ResBlock::new(
                    &layout,
                    &format!("enc.{l}.{b}"),
                    cur,
                    cl,
                    g,
                    e,
                )?);
                cur = cl;
            }
            enc.push(blocks);
            skips.push(cur);
        }
        let mid = ResBlock::new(&layout, "mid", cur, cur, g, e)?;
        let mut dec: Vec<Vec<ResBlock>> = vec![Vec::new(); levels];
        for l in (0..levels).rev() {
            let cl = cfg.level_channels(l);
            for b in 0..cfg.blocks {
                let cin = if b == 0 { cur + skips[l] } else { cur };
                dec[l].push(ResBlock::new(
                    &layout,
                    &format!("dec.{l}.{b}"),
                    cin,
                    cl,
                    g,
                    e,
                )?);
                cur = cl;
            }
        }
        Ok(UNet {
            emb: NoiseEmbedding::new(&layout, ch)?,
            in_conv: GatedConv::new(&layout, "in_conv", 2 * cfg.img_channels, ch, 3)?,
            enc,
            mid,
            dec,
            out_norm: GroupNorm::new(&layout, "out_norm", cur, g)?,
            out_conv: GatedConv::new(&layout, "out_conv", cur, cfg.img_channels, 3)?,
            cfg: cfg.clone(),
            layout,
        })
    }

    pub fn config(&self) -> &UNetConfig {
        &self.cfg
    }

    /// The parameter names and shapes this network reads (`spec_layout` of its config).
    pub fn layout(&self) -> &[(String, Vec<usize>)] {
        &self.layout
    }

    /// Checks that `params` has exactly this network's layout (names, order, shapes).
    pub fn check_params(&self, params: &ParamStore) -> Result<(), String> {
        if params.params.len() != self.layout.len() {
            return Err(format!(
                "parameter store has {} tensors, the network {}",
                params.params.len(),
                self.layout.len()
            ));
        }
        for (p, (name, shape)) in params.params.iter().zip(&self.layout) {
            if &p.name != name
                || &p.shape != shape
                || p.data.len() != shape.iter().product::<usize>()
            {
                return Err(format!(
                    "parameter {} {:?} where the network expects {name} {shape:?}",
                    p.name, p.shape
                ));
            }
        }
        Ok(())
    }

    /// Checks an input: `f_in` [N, 2C, H, W] with N > 0, H and W positive multiples of
    /// 2^(L-1), and one finite `c_noise` per sample.
    pub fn check_input(&self, f_in: &Array4<f32>, c_noise: &[f32]) -> Result<(), String> {
        let (n, c, h, w) = f_in.dim();
        let div = 1usize << (self.cfg.mult.len() - 1);
        if c != 2 * self.cfg.img_channels {
            return Err(format!(
                "F_in has {c} channels, expected 2C = {}",
                2 * self.cfg.img_channels
            ));
        }
        if h == 0 || w == 0 || h % div != 0 || w % div != 0 {
            return Err(format!(
                "image size {h}x{w} is not a positive multiple of {div}"
            ));
        }
        if n == 0 {
            return Err("empty batch".into());
        }
        if c_noise.len() != n {
            return Err(format!("{} noise levels for {n} samples", c_noise.len()));
        }
        if c_noise.iter().any(|v| !v.is_finite()) {
            return Err("c_noise must be finite".into());
        }
        Ok(())
    }

    fn assert_valid(&self, params: &ParamStore, f_in: &Array4<f32>, c_noise: &[f32]) {
        if let Err(e) = self
            .check_params(params)
            .and_then(|_| self.check_input(f_in, c_noise))
        {
            panic!("UNet: {e} (check with check_params / check_input first)");
        }
    }

    /// `F = F(F_in, c_noise)`: f_in [N, 2C, H, W], one c_noise per sample. Keeps what
    /// [`UNet::backward`] needs. Panics on parameters or inputs that
    /// [`UNet::check_params`] / [`UNet::check_input`] reject.
    pub fn forward(
        &self,
        params: &ParamStore,
        f_in: &Array4<f32>,
        c_noise: &[f32],
    ) -> (Array4<f32>, ForwardCache) {
        self.assert_valid(params, f_in, c_noise);
        let (f, cache) = self.run(params, f_in, c_noise, true);
        (f, cache.expect("cache kept"))
    }

    /// The same output as [`UNet::forward`], keeping nothing (inference, less memory).
    pub fn forward_inference(
        &self,
        params: &ParamStore,
        f_in: &Array4<f32>,
        c_noise: &[f32],
    ) -> Array4<f32> {
        self.assert_valid(params, f_in, c_noise);
        self.run(params, f_in, c_noise, false).0
    }

    /// The noise embedding after the second SiLU, [N, 4ch]. Panics on parameters that
    /// [`UNet::check_params`] rejects.
    pub fn embedding(&self, params: &ParamStore, c_noise: &[f32]) -> Array2<f32> {
        if let Err(e) = self.check_params(params) {
            panic!("UNet: {e}");
        }
        self.emb.forward(params, c_noise).0
    }

    fn run(
        &self,
        params: &ParamStore,
        f_in: &Array4<f32>,
        c_noise: &[f32],
        keep: bool,
    ) -> (Array4<f32>, Option<ForwardCache>) {
        // Fewer samples than workers and nothing kept (a restoration): on this thread, the
        // layers' parallel regions going to the spinning team (`nn::team`). Else on a worker
        // of the pool: the regions then fork and join between workers, instead of each being
        // sent to the pool from outside and waited for.
        if !keep && f_in.dim().0 < crate::nn::threads() {
            return self.run_layers(params, f_in, c_noise, keep);
        }
        rayon::scope(|_| self.run_layers(params, f_in, c_noise, keep))
    }

    fn run_layers(
        &self,
        params: &ParamStore,
        f_in: &Array4<f32>,
        c_noise: &[f32],
        keep: bool,
    ) -> (Array4<f32>, Option<ForwardCache>) {
        let levels = self.cfg.mult.len();
        let (emb, emb_cache) = self.emb.forward(params, c_noise);
        let block = |b: &ResBlock, x: &Array4<f32>| {
            if keep {
                let (y, c) = b.forward(params, x, &emb);
                (y, Some(c))
            } else {
                (b.forward_inference(params, x, &emb), None)
            }
        };
        let (mut x, in_cache) = if keep {
            let (y, c) = self.in_conv.forward(params, f_in);
            (y, Some(c))
        } else {
            (self.in_conv.forward_inference(params, f_in), None)
        };
        // Inference gives each activation back once it is consumed (`nn::recycle`).
        let done = |a: Array4<f32>| {
            if !keep {
                recycle(a);
            }
        };
        let mut enc_caches = Vec::new();
        let mut skips = Vec::new();
        for l in 0..levels {
            let mut caches = Vec::new();
            for b in &self.enc[l] {
                let (y, c) = block(b, &x);
                done(std::mem::replace(&mut x, y));
                caches.extend(c);
            }
            enc_caches.push(caches);
            // The last level's skip is the middle block's input, kept below.
            if l < levels - 1 {
                let pooled = avg_pool_2x2(&x);
                skips.push(std::mem::replace(&mut x, pooled));
            }
        }
        let (y, mid_cache) = block(&self.mid, &x);
        skips.push(std::mem::replace(&mut x, y));
        let mut dec_caches: Vec<Vec<ResBlockCache>> = vec![Vec::new(); levels];
        let mut cat_channels = vec![0; levels];
        // Whether x is the level below's output, still to be upsampled.
        let mut up = false;
        for l in (0..levels).rev() {
            cat_channels[l] = x.dim().1;
            let skip = skips.pop().expect("one skip per level");
            let cat = match up {
                true => upsample_concat(&x, &skip),
                false => concat_channels(&x, &skip),
            };
            done(std::mem::replace(&mut x, cat));
            done(skip);
            for b in &self.dec[l] {
                let (y, c) = block(b, &x);
                done(std::mem::replace(&mut x, y));
                dec_caches[l].extend(c);
            }
            up = l > 0;
        }
        if !keep {
            let a = self.out_norm.forward_silu_inference(params, &x);
            let f = self.out_conv.forward_inference(params, &a);
            recycle(a);
            recycle(x);
            return (f, None);
        }
        let (a, out_norm) = self.out_norm.forward_silu(params, &x);
        let (f, out_conv) = self.out_conv.forward_owned(params, a);
        let cache = ForwardCache {
            emb: emb_cache,
            in_conv: in_cache.expect("kept"),
            enc: enc_caches,
            mid: mid_cache.expect("kept"),
            dec: dec_caches,
            cat_channels,
            out_norm,
            out_conv,
        };
        (f, Some(cache))
    }

    /// Accumulates dL/dparams into `grads` (same layout as the parameters) and returns
    /// dL/dF_in, given dL/dF.
    pub fn backward(
        &self,
        params: &ParamStore,
        cache: &ForwardCache,
        d_f: &Array4<f32>,
        grads: &mut ParamStore,
    ) -> Array4<f32> {
        if let Err(e) = self.check_params(grads) {
            panic!("UNet::backward: gradient store: {e}");
        }
        rayon::scope(|_| self.backward_impl(params, cache, d_f, Some(grads)))
    }

    /// dL/dF_in only, without parameter gradients (vector-Jacobian product to the input).
    pub fn backward_input(
        &self,
        params: &ParamStore,
        cache: &ForwardCache,
        d_f: &Array4<f32>,
    ) -> Array4<f32> {
        rayon::scope(|_| self.backward_impl(params, cache, d_f, None))
    }

    fn backward_impl(
        &self,
        params: &ParamStore,
        cache: &ForwardCache,
        d_f: &Array4<f32>,
        mut grads: Option<&mut ParamStore>,
    ) -> Array4<f32> {
        let levels = self.cfg.mult.len();
        let d_a = self
            .out_conv
            .backward(params, &cache.out_conv, d_f, grads.as_deref_mut());
        let mut d =
            self.out_norm
                .backward_silu(params, &cache.out_norm, &d_a, grads.as_deref_mut());
        let n = d.dim().0;
        let mut d_emb = Array2::<f32>::zeros((n, 4 * self.cfg.ch));
        let mut d_skips: Vec<Array4<f32>> = Vec::with_capacity(levels);
        for l in 0..levels {
            if l > 0 {
                d = upsample_nearest_2x_backward(&d);
            }
            for (block, c) in self.dec[l].iter().zip(&cache.dec[l]).rev() {
                let (dx, de) = block.backward(params, c, &d, grads.as_deref_mut());
                d = dx;
                d_emb += &de;
            }
            let (dx, ds) = split_channels(&d, cache.cat_channels[l]);
            d = dx;
            d_skips.push(ds);
        }
        let (dx, de) = self
            .mid
            .backward(params, &cache.mid, &d, grads.as_deref_mut());
        d = dx;
        d_emb += &de;
        for l in (0..levels).rev() {
            if l < levels - 1 {
                d = avg_pool_2x2_backward(&d);
            }
            d += &d_skips.pop().expect("every level has a skip");
            for (block, c) in self.enc[l].iter().zip(&cache.enc[l]).rev() {
                let (dx, de) = block.backward(params, c, &d, grads.as_deref_mut());
                d = dx;
                d_emb += &de;
            }
        }
        let d_in = self
            .in_conv
            .backward(params, &cache.in_conv, &d, grads.as_deref_mut());
        self.emb.backward(params, &cache.emb, &d_emb, grads);
        d_in
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ambient_core::AmbientRng;

    /// The gradients are the same bits whatever the number of threads (the batch is split
    /// the same way for any pool), so training runs reproduce exactly.
    /// An 8 x 8 network with two levels (Winograd at 8 x 8, im2col at 4 x 4).
    fn small_config() -> UNetConfig {
        UNetConfig {
            img_channels: 1,
            img_resolution: 8,
            ch: 8,
            mult: vec![1, 2],
            blocks: 1,
            groups: 4,
            sigma_data: 0.5,
        }
    }

    #[test]
    fn backward_is_deterministic_across_thread_counts() {
        let net = UNet::new(&small_config()).unwrap();
        let mut rng = AmbientRng::new(5);
        let mut params = ParamStore::zeros(net.layout());
        for p in params.params.iter_mut() {
            p.data.iter_mut().for_each(|v| *v = 0.3 * rng.normal());
        }
        let mut f_in = Array4::<f32>::zeros((11, 2, 8, 8));
        f_in.iter_mut().for_each(|v| *v = rng.normal());
        let c_noise: Vec<f32> = (0..11).map(|i| 0.1 * i as f32 - 0.5).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (f, cache) = net.forward(&params, &f_in, &c_noise);
                let mut grads = params.zeros_like();
                let d_in = net.backward(&params, &cache, &f, &mut grads);
                (f, d_in, grads)
            })
        };
        let one = run(1);
        for t in [2, 3] {
            assert!(run(t) == one, "{t} threads differ from 1");
        }
    }

    /// Inference (each ResBlock's SiLU(GN(.)) fused into its convolutions' input stage, the
    /// gated output stage fused, filter panels transformed on the fly for single images) is
    /// the bits of the forward pass that keeps its cache (each layer on its own): a batch
    /// and each image alone, on 1 and 2 workers. The spec configuration (Winograd in every
    /// 3x3 convolution of the blocks) and a small one (im2col and the direct convolution).
    #[test]
    fn inference_is_the_bits_of_the_kept_forward_pass() {
        let mut rng = AmbientRng::new(29);
        for cfg in [UNetConfig::spec_mnist(), small_config()] {
            let net = UNet::new(&cfg).unwrap();
            let mut params = ParamStore::zeros(net.layout());
            for p in params.params.iter_mut() {
                p.data.iter_mut().for_each(|v| *v = 0.2 * rng.normal());
            }
            let r = cfg.img_resolution;
            let n = 3;
            let mut f_in = Array4::<f32>::zeros((n, 2, r, r));
            f_in.iter_mut().for_each(|v| *v = rng.normal());
            let c_noise: Vec<f32> = (0..n).map(|i| 0.4 * i as f32 - 0.6).collect();
            let bits = |a: &Array4<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let kept = net.forward(&params, &f_in, &c_noise).0;
                    let batch = net.forward_inference(&params, &f_in, &c_noise);
                    assert!(
                        bits(&batch) == bits(&kept),
                        "{r} x {r}, batch, {threads} workers"
                    );
                    for i in 0..n {
                        let xi = f_in.slice(ndarray::s![i..i + 1, .., .., ..]).to_owned();
                        let one = net.forward_inference(&params, &xi, &c_noise[i..i + 1]);
                        let want = kept.slice(ndarray::s![i..i + 1, .., .., ..]).to_owned();
                        assert!(
                            bits(&one) == bits(&want),
                            "{r} x {r}, image {i}, {threads} workers"
                        );
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod bench {
    use super::*;
    use crate::init::init_params;
    use ambient_core::AmbientRng;
    use std::time::Instant;

    /// User + system CPU time of this process (all threads), from /proc/self/stat.
    fn process_cpu_seconds() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<f64> = after
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        // Fields 14 and 15 (utime, stime) are 11 and 12 after the command name; 100 ticks/s.
        (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
    }

    /// Rough timings of the spec configuration (run in release:
    /// `cargo test --release -p ambient-cpu unet::bench -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn timing_spec_config() {
        let cfg = UNetConfig::spec_mnist();
        let net = UNet::new(&cfg).unwrap();
        let mut rng = AmbientRng::new(1);
        let mut params = init_params(&cfg, &mut rng);
        for p in params.params.iter_mut() {
            p.data.iter_mut().for_each(|v| *v += 0.01 * rng.normal());
        }
        for n in [64usize, 1] {
            let mut f_in = Array4::<f32>::zeros((n, 2, 28, 28));
            f_in.iter_mut().for_each(|v| *v = rng.normal());
            let c_noise: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 0.3).collect();
            let mut grads = params.zeros_like();
            // Wall time: the fastest of several repetitions (the machine is shared, and the
            // minimum is the least disturbed estimate). CPU time (all threads, mean): what the
            // work costs whatever else runs.
            let reps = if n == 1 { 30 } else { 4 };
            let mut wall = [f64::MAX; 3];
            let mut cpu = [0.0f64; 3];
            let mut time = |k: usize, f: &mut dyn FnMut()| {
                let (t, c) = (Instant::now(), process_cpu_seconds());
                f();
                wall[k] = wall[k].min(t.elapsed().as_secs_f64());
                cpu[k] += (process_cpu_seconds() - c) / reps as f64;
            };
            for _ in 0..reps {
                let mut out = None;
                time(0, &mut || out = Some(net.forward(&params, &f_in, &c_noise)));
                let (f, cache) = out.take().unwrap();
                time(1, &mut || {
                    net.backward(&params, &cache, &f, &mut grads);
                });
                drop(cache);
                time(2, &mut || {
                    net.forward_inference(&params, &f_in, &c_noise);
                });
            }
            eprintln!(
                "batch {n} ({} threads): wall forward {:.1} ms, backward {:.1} ms, inference \
                 {:.1} ms (fastest of {reps}); CPU forward {:.0} ms, backward {:.0} ms, \
                 inference {:.0} ms (mean)",
                rayon::current_num_threads(),
                1e3 * wall[0],
                1e3 * wall[1],
                1e3 * wall[2],
                1e3 * cpu[0],
                1e3 * cpu[1],
                1e3 * cpu[2],
            );
        }
    }
}

#[cfg(test)]
mod profile {
    use super::*;
    use crate::init::init_params;
    use ambient_core::AmbientRng;

    /// A loop to profile under `perf record` (AMBIENT_PROFILE_N images at batch
    /// AMBIENT_PROFILE_BATCH, inference).
    #[test]
    #[ignore]
    fn profile_loop() {
        let n: usize = std::env::var("AMBIENT_PROFILE_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300);
        let b: usize = std::env::var("AMBIENT_PROFILE_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let train = std::env::var("AMBIENT_PROFILE_TRAIN").is_ok();
        let cfg = UNetConfig::spec_mnist();
        let net = UNet::new(&cfg).unwrap();
        let mut rng = AmbientRng::new(1);
        let mut params = init_params(&cfg, &mut rng);
        for p in params.params.iter_mut() {
            p.data.iter_mut().for_each(|v| *v += 0.01 * rng.normal());
        }
        let mut f_in = Array4::<f32>::zeros((b, 2, 28, 28));
        f_in.iter_mut().for_each(|v| *v = rng.normal());
        let c_noise: Vec<f32> = (0..b).map(|i| i as f32 * 0.01 - 0.3).collect();
        let mut grads = params.zeros_like();
        for _ in 0..n {
            if train {
                let (f, cache) = net.forward(&params, &f_in, &c_noise);
                net.backward(&params, &cache, &f, &mut grads);
            } else {
                std::hint::black_box(net.forward_inference(&params, &f_in, &c_noise));
            }
        }
    }
}
