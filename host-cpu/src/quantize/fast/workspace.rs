//! [`FastWorkspace`]: every buffer one restoration needs, sized once for a model, so that a
//! restoration allocates nothing. One per thread.

use super::model::FastInt8Model;
use super::norm::NormScratch;

/// Buffers of one restoration.
#[derive(Debug, Clone)]
pub struct FastWorkspace {
    /// The current feature map and the next one (swapped after each step).
    pub(super) x: Vec<i8>,
    pub(super) next: Vec<i8>,
    /// A ResBlock's conv1 output and skip-conv output.
    pub(super) h: Vec<i8>,
    pub(super) r: Vec<i8>,
    /// Each level's skip connection.
    pub(super) skips: Vec<Vec<i8>>,
    /// The quantized input's `y` and mask channels.
    pub(super) yq: Vec<i8>,
    pub(super) mq: Vec<i8>,
    /// A convolution's padded input.
    pub(super) padded: Vec<i16>,
    pub(super) norm: NormScratch,
    /// What it was sized for: the model's largest map, padded map, GroupNorm, image, levels.
    sized_for: [usize; 5],
}

fn sizes(model: &FastInt8Model) -> [usize; 5] {
    [
        model.max_map,
        model.max_padded,
        model.max_norm,
        model.image_len(),
        model.config.levels as usize,
    ]
}

impl FastWorkspace {
    pub fn new(model: &FastInt8Model) -> Self {
        let map = model.max_map;
        let img = model.image_len();
        FastWorkspace {
            x: vec![0; map],
            next: vec![0; map],
            h: vec![0; map],
            r: vec![0; map],
            skips: vec![vec![0; map]; model.config.levels as usize],
            yq: vec![0; img],
            mq: vec![0; img],
            padded: vec![0; model.max_padded],
            norm: NormScratch::new(model.max_norm),
            sized_for: sizes(model),
        }
    }

    /// Whether it holds every buffer `model` needs (it does if made for a model of the same
    /// configuration).
    pub fn fits(&self, model: &FastInt8Model) -> bool {
        self.sized_for == sizes(model)
    }
}
