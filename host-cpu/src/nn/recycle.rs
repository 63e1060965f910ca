//! Activation buffers reused from layer to layer, and pass to pass, in inference. Each layer
//! returns a fresh array, and `Array4::zeros` zero-fills memory the allocator hands back from
//! the layer before: on the calling thread, while the helper threads wait (1.5-2.5% of a
//! single-image restoration in its fast mode, 5-7% in its slow one, by `perf`). `UNet`'s
//! inference pass gives each activation back once it has been consumed ([`recycle`]), and a
//! layer that writes every value of its output takes a buffer of exactly that length, old
//! values and all, instead of zeros ([`overwritten`]). A layer that missed a value would
//! leave a stale one there rather than 0, which every test comparing an inference pass with
//! a reference bit for bit would see (the network's tests run passes one after another).

use ndarray::Array4;
use std::cell::RefCell;

/// Buffers kept per thread (a pass of the spec network has at most a few activations alive).
const KEEP: usize = 12;

/// Largest buffer kept (values): one image's activations, not a training batch's.
const MOST: usize = 1 << 20;

thread_local! {
    static FREE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A standard-layout array of `shape` whose every value the caller writes: a buffer given
/// back earlier on this thread of exactly that length (its values stale), else zeros.
pub(crate) fn overwritten(shape: (usize, usize, usize, usize)) -> Array4<f32> {
    let len = shape.0 * shape.1 * shape.2 * shape.3;
    let kept = FREE.with_borrow_mut(|free| {
        let at = free.iter().position(|b| b.len() == len)?;
        Some(free.swap_remove(at))
    });
    let data = kept.unwrap_or_else(|| vec![0.0; len]);
    Array4::from_shape_vec(shape, data).expect("a buffer of the shape's length")
}

/// Gives `a`'s buffer back for [`overwritten`] on this thread (the oldest one goes when
/// [`KEEP`] are held; views and large arrays go to the allocator).
pub(crate) fn recycle(a: Array4<f32>) {
    let len = a.len();
    if len > MOST || !a.is_standard_layout() {
        return;
    }
    let (data, offset) = a.into_raw_vec_and_offset();
    if data.len() != len || offset.is_some_and(|o| o != 0) {
        return;
    }
    FREE.with_borrow_mut(|free| {
        if free.len() >= KEEP {
            free.remove(0);
        }
        free.push(data);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer given back comes out again for its length only, with its values; other
    /// lengths get zeros; a view of part of an array is not kept.
    #[test]
    fn buffers_come_back_by_length() {
        let mut a = Array4::<f32>::zeros((1, 2, 3, 4));
        a.fill(7.0);
        recycle(a);
        let other = overwritten((1, 2, 3, 5));
        assert!(other.iter().all(|&v| v == 0.0), "another length: zeros");
        let again = overwritten((2, 1, 4, 3));
        assert!(
            again.iter().all(|&v| v == 7.0),
            "the same length: the buffer"
        );
        let fresh = overwritten((2, 1, 4, 3));
        assert!(fresh.iter().all(|&v| v == 0.0), "taken once only");
        let mut big = Array4::<f32>::zeros((1, 1, 4, 4));
        big.fill(3.0);
        let part = big.slice_move(ndarray::s![.., .., 1.., ..]);
        recycle(part);
        assert!(
            overwritten((1, 1, 3, 4)).iter().all(|&v| v == 0.0),
            "a view"
        );
    }
}
