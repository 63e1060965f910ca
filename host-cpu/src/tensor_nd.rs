//! The core's tensor trait on ndarray: `NdTensor` wraps an NCHW `Array4<f32>`, so the core's
//! losses, preconditioning and samplers run on the CPU host's arrays unchanged.

use ambient_core::tensor::{Shape, Tensor};
use ndarray::{Array4, Axis, Zip};

/// An NCHW f32 tensor on the CPU host.
#[derive(Debug, Clone, PartialEq)]
pub struct NdTensor(pub Array4<f32>);

impl NdTensor {
    pub fn zeros(shape: Shape) -> Self {
        NdTensor(Array4::zeros((shape.n, shape.c, shape.h, shape.w)))
    }
}

impl Tensor for NdTensor {
    fn shape(&self) -> Shape {
        let (n, c, h, w) = self.0.dim();
        Shape::new(n, c, h, w)
    }
    fn fill(&mut self, v: f32) {
        self.0.fill(v);
    }
    fn copy_from(&mut self, src: &Self) {
        self.0.assign(&src.0);
    }
    fn scale(&mut self, a: f32) {
        self.0.mapv_inplace(|x| x * a);
    }
    fn scale_per_sample(&mut self, a: &[f32]) {
        assert_eq!(
            a.len(),
            self.0.dim().0,
            "scale_per_sample: one factor per sample"
        );
        for (mut s, &f) in self.0.axis_iter_mut(Axis(0)).zip(a) {
            s.mapv_inplace(|x| x * f);
        }
    }
    fn add_scalar(&mut self, a: f32) {
        self.0.mapv_inplace(|x| x + a);
    }
    fn axpby(&mut self, a: f32, x: &Self, b: f32) {
        Zip::from(&mut self.0)
            .and(&x.0)
            .for_each(|d, &s| *d = a * s + b * *d);
    }
    fn mul(&mut self, x: &Self) {
        Zip::from(&mut self.0).and(&x.0).for_each(|d, &s| *d *= s);
    }
    fn dot(&self, x: &Self) -> f64 {
        let mut acc = 0.0f64;
        Zip::from(&self.0)
            .and(&x.0)
            .for_each(|&a, &b| acc += a as f64 * b as f64);
        acc
    }
    fn sum_sq(&self) -> f64 {
        self.0.iter().map(|&a| a as f64 * a as f64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ambient_core::tensor::SliceTensor;

    /// The ndarray implementation agrees with the core's slice implementation op for op.
    #[test]
    fn agrees_with_slice_tensor() {
        let shape = Shape::new(2, 1, 2, 2);
        let a0: Vec<f32> = (0..8).map(|i| i as f32 * 0.5 - 1.0).collect();
        let b0: Vec<f32> = (0..8).map(|i| (i % 3) as f32 - 0.7).collect();
        let mut na = NdTensor(Array4::from_shape_vec((2, 1, 2, 2), a0.clone()).unwrap());
        let nb = NdTensor(Array4::from_shape_vec((2, 1, 2, 2), b0.clone()).unwrap());
        let (mut sa, mut sb) = (a0.clone(), b0.clone());
        let mut ta = SliceTensor::new(shape, &mut sa).unwrap();
        let tb = SliceTensor::new(shape, &mut sb).unwrap();
        na.axpby(0.3, &nb, -1.5);
        ta.axpby(0.3, &tb, -1.5);
        na.mul(&nb);
        ta.mul(&tb);
        na.scale_per_sample(&[2.0, -0.5]);
        ta.scale_per_sample(&[2.0, -0.5]);
        na.add_scalar(0.25);
        ta.add_scalar(0.25);
        assert_eq!(na.0.as_slice().unwrap(), ta.data());
        assert_eq!(na.dot(&nb), ta.dot(&tb));
        assert_eq!(na.sum_sq(), ta.sum_sq());
        assert_eq!(na.shape(), shape);
    }
}
