//! The Winograd-domain filters of one convolution, kept between calls for as long as its
//! parameters stay bit for bit the same: inference (restoration, sampling) runs one weight
//! set many times and transforms it once; training changes the weights every step, which
//! the comparison finds at the first value that differs, and the filters are rebuilt. Weights
//! under a live `FrozenParams` guard (crate::frozen) are compared once per guard: its id,
//! kept with the filter, then vouches for them.

use super::winograd::WinogradFilter;
use std::sync::{Arc, Mutex};

/// The last filter built, the parameters it was built from (their bits, concatenated) and
/// the id of the frozen store they were last found equal in, if any.
#[derive(Default)]
pub(crate) struct FilterCache(Mutex<Option<Cached>>);

struct Cached {
    key: Vec<u32>,
    filter: Arc<WinogradFilter>,
    frozen: Option<u64>,
}

impl FilterCache {
    /// The filter `build` makes from the parameters `parts`: the cached one when `parts`
    /// are, bit for bit, those it was built from (so the result is always what `build`
    /// returns now), else a new one, which replaces it.
    /// returns now), else a new one, which replaces it. `frozen`: the id of a live
    /// `FrozenParams` over the store `parts` come from (crate::frozen::frozen_id); when the
    /// cached filter was last checked under that same id, the comparison is skipped.
    pub(crate) fn get(
        &self,
        parts: &[&[f32]],
        frozen: Option<u64>,
        build: impl FnOnce() -> WinogradFilter,
    ) -> Arc<WinogradFilter> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = slot.as_mut() {
            if frozen.is_some() && c.frozen == frozen {
                return Arc::clone(&c.filter);
            }
            if same_bits(&c.key, parts) {
                c.frozen = frozen;
                return Arc::clone(&c.filter);
            }
        }
        let filter = Arc::new(build());
        let key = parts
            .iter()
            .flat_map(|p| p.iter().map(|v| v.to_bits()))
            .collect();
        *slot = Some(Cached {
            key,
            filter: Arc::clone(&filter),
            frozen,
        });
        filter
    }
}

/// Whether `key` holds exactly the bits of `parts`, concatenated.
fn same_bits(key: &[u32], parts: &[&[f32]]) -> bool {
    if key.len() != parts.iter().map(|p| p.len()).sum::<usize>() {
        return false;
    }
    let mut rest = key;
    parts.iter().all(|p| {
        let (head, tail) = rest.split_at(p.len());
        rest = tail;
        head == bytemuck::cast_slice::<f32, u32>(p)
    })
}

/// A copy starts empty (the filters are rebuilt on first use).
impl Clone for FilterCache {
    fn clone(&self) -> Self {
        FilterCache::default()
    }
}

impl std::fmt::Debug for FilterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FilterCache")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Built once for the same bits; rebuilt (and the new filter returned) when any value
    /// changes, -0.0 for 0.0 included.
    #[test]
    fn rebuilds_exactly_when_the_bits_change() {
        let cache = FilterCache::default();
        let builds = Cell::new(0);
        let get = |w: &[f32], g: &[f32]| {
            cache.get(&[w, g], None, || {
                builds.set(builds.get() + 1);
                WinogradFilter::new(w, 1, 1)
            })
        };
        let w = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let g = [1.0f32; 9];
        let a = get(&w, &g);
        let b = get(&w.clone(), &g);
        assert!(
            Arc::ptr_eq(&a, &b) && builds.get() == 1,
            "same bits: reused"
        );
        let mut w2 = w;
        w2[0] = -0.0;
        let c = get(&w2, &g);
        assert_eq!(builds.get(), 2, "-0.0 differs from 0.0 in its bits");
        assert!(!Arc::ptr_eq(&a, &c));
        let mut g2 = g;
        g2[8] = 1.5;
        get(&w2, &g2);
        assert_eq!(builds.get(), 3, "the last value of the last part");
    }

    /// Under one frozen id the bits are compared once, then trusted (the guard's borrow
    /// guarantees they stay); a new id (another guard) compares again, and finding other
    /// bits rebuilds.
    #[test]
    fn a_frozen_id_skips_the_comparison_until_it_changes() {
        let cache = FilterCache::default();
        let builds = Cell::new(0);
        let get = |w: &[f32], id: Option<u64>| {
            cache.get(&[w], id, || {
                builds.set(builds.get() + 1);
                WinogradFilter::new(w, 1, 1)
            })
        };
        let w = [1.0f32; 9];
        let mut w2 = w;
        w2[4] = 2.0;
        let a = get(&w, Some(7));
        assert!(Arc::ptr_eq(&a, &get(&w, Some(7))) && builds.get() == 1);
        // What the id vouches for is not compared again (other bits under the same id
        // cannot occur while the guard lives; this shows the comparison is skipped).
        assert!(Arc::ptr_eq(&a, &get(&w2, Some(7))) && builds.get() == 1);
        let b = get(&w2, Some(8));
        assert!(
            !Arc::ptr_eq(&a, &b) && builds.get() == 2,
            "new id: compared, rebuilt"
        );
        assert!(
            Arc::ptr_eq(&b, &get(&w2, None)) && builds.get() == 2,
            "same bits"
        );
        get(&w, None);
        assert_eq!(builds.get(), 3, "no id: always compared");
    }
}
