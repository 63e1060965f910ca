//! The tensor boundary between the core and its hosts: an NCHW shape and the handful of
//! element-wise operations that the losses, the preconditioning and the sampler recurrences
//! need. Hosts implement it for ndarray arrays and device buffers; here it is implemented for
//! plain slices (`SliceTensor`), which is what firmware and the tests use.
//!
//! Every operation that combines two tensors requires equal shapes and panics otherwise: a
//! shape mismatch between two tensors of one computation is a programming error, not bad input
//! (bad input is rejected with typed errors at the host's boundary, before it gets here).

/// NCHW shape: batch, channels, height, width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    pub const fn new(n: usize, c: usize, h: usize, w: usize) -> Self {
        Shape { n, c, h, w }
    }
    /// Total number of elements.
    pub const fn len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Elements of one sample (C * H * W).
    pub const fn sample_len(&self) -> usize {
        self.c * self.h * self.w
    }
}

/// The operations the core needs from a host's tensor type.
pub trait Tensor {
    fn shape(&self) -> Shape;
    /// self <- v everywhere.
    fn fill(&mut self, v: f32);
    /// self <- src.
    fn copy_from(&mut self, src: &Self);
    /// self <- a * self.
    fn scale(&mut self, a: f32);
    /// `self[n, ...] <- a[n] * self[n, ...]`; `a.len()` equals the batch size.
    fn scale_per_sample(&mut self, a: &[f32]);
    /// self <- self + a.
    fn add_scalar(&mut self, a: f32);
    /// self <- a * x + b * self.
    fn axpby(&mut self, a: f32, x: &Self, b: f32);
    /// self <- self * x, element-wise (multiply by a mask, or by a per-pixel weight).
    fn mul(&mut self, x: &Self);
    /// sum of self * x over every element (accumulated in f64).
    fn dot(&self, x: &Self) -> f64;
    /// sum of squares over every element (accumulated in f64).
    fn sum_sq(&self) -> f64;
}

/// An NCHW tensor over a caller-owned slice.
#[derive(Debug)]
pub struct SliceTensor<'a> {
    shape: Shape,
    data: &'a mut [f32],
}

impl<'a> SliceTensor<'a> {
    /// Wraps `data` as a tensor of `shape`; `None` if the lengths differ.
    pub fn new(shape: Shape, data: &'a mut [f32]) -> Option<Self> {
        (data.len() == shape.len()).then_some(SliceTensor { shape, data })
    }
    pub fn data(&self) -> &[f32] {
        self.data
    }
    pub fn data_mut(&mut self) -> &mut [f32] {
        self.data
    }
}

impl Tensor for SliceTensor<'_> {
    fn shape(&self) -> Shape {
        self.shape
    }
    fn fill(&mut self, v: f32) {
        self.data.iter_mut().for_each(|d| *d = v);
    }
    fn copy_from(&mut self, src: &Self) {
        assert_eq!(self.shape, src.shape, "copy_from: shape mismatch");
        self.data.copy_from_slice(src.data);
    }
    fn scale(&mut self, a: f32) {
        self.data.iter_mut().for_each(|d| *d *= a);
    }
    fn scale_per_sample(&mut self, a: &[f32]) {
        assert_eq!(
            a.len(),
            self.shape.n,
            "scale_per_sample: one factor per sample"
        );
        let len = self.shape.sample_len();
        if len == 0 {
            return;
        }
        for (chunk, &f) in self.data.chunks_mut(len).zip(a) {
            chunk.iter_mut().for_each(|d| *d *= f);
        }
    }
    fn add_scalar(&mut self, a: f32) {
        self.data.iter_mut().for_each(|d| *d += a);
    }
    fn axpby(&mut self, a: f32, x: &Self, b: f32) {
        assert_eq!(self.shape, x.shape, "axpby: shape mismatch");
        for (d, &s) in self.data.iter_mut().zip(x.data.iter()) {
            *d = a * s + b * *d;
        }
    }
    fn mul(&mut self, x: &Self) {
        assert_eq!(self.shape, x.shape, "mul: shape mismatch");
        for (d, &s) in self.data.iter_mut().zip(x.data.iter()) {
            *d *= s;
        }
    }
    fn dot(&self, x: &Self) -> f64 {
        assert_eq!(self.shape, x.shape, "dot: shape mismatch");
        self.data
            .iter()
            .zip(x.data.iter())
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    }
    fn sum_sq(&self) -> f64 {
        self.data.iter().map(|&a| a as f64 * a as f64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_tensor_ops_match_their_definitions() {
        let shape = Shape::new(2, 1, 1, 2);
        let mut a = [1.0f32, 2.0, 3.0, 4.0];
        let mut b = [0.5f32, -1.0, 2.0, 0.0];
        let mut ta = SliceTensor::new(shape, &mut a).unwrap();
        let tb = SliceTensor::new(shape, &mut b).unwrap();
        ta.axpby(2.0, &tb, 3.0); // 2b + 3a
        assert_eq!(ta.data(), &[4.0, 4.0, 13.0, 12.0]);
        ta.mul(&tb);
        assert_eq!(ta.data(), &[2.0, -4.0, 26.0, 0.0]);
        ta.scale_per_sample(&[0.5, 2.0]);
        assert_eq!(ta.data(), &[1.0, -2.0, 52.0, 0.0]);
        ta.add_scalar(1.0);
        assert_eq!(ta.data(), &[2.0, -1.0, 53.0, 1.0]);
        assert_eq!(ta.sum_sq(), 4.0 + 1.0 + 2809.0 + 1.0);
        assert_eq!(ta.dot(&tb), 1.0 + 1.0 + 106.0 + 0.0);
        ta.scale(0.0);
        ta.fill(7.0);
        assert_eq!(ta.data(), &[7.0; 4]);
        assert!(SliceTensor::new(shape, &mut [0.0; 3]).is_none());
    }
}
