//! Weights that cannot change for as long as a [`FrozenParams`] borrows them: inference
//! (restoration, sampling, DPS) runs one weight set many times, and the layers' caches of
//! values derived from the weights (the Winograd-domain filters, `nn::filter_cache`) may then
//! trust an earlier check instead of comparing every weight again on every call (3.7 MB per
//! pass of the spec network, about 6% of a single-image restoration).
//!
//! Soundness rests on the borrow: the guard holds `&ParamStore` for its whole life, so no
//! `&mut` to the store (nor a move or drop of it) can exist meanwhile, and `ParamStore` has
//! no interior mutability. The registry maps the address of the store's parameter list to
//! the guard's id, unique for the process; a later store at the same address (after the
//! guard is gone) is not registered, and a new guard there gets a new id.

use crate::params::ParamStore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Live guards: (address of `ParamStore::params`'s buffer, id).
static LIVE: Mutex<Vec<(usize, u64)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A shared borrow of a parameter store that marks it unchanging while it lives. Derefs to
/// the store, so `&frozen` goes wherever `&ParamStore` does.
#[derive(Debug)]
pub struct FrozenParams<'a> {
    params: &'a ParamStore,
    id: u64,
}

impl<'a> FrozenParams<'a> {
    pub fn new(params: &'a ParamStore) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if let Some(addr) = address(params) {
            lock().push((addr, id));
        }
        FrozenParams { params, id }
    }
}

impl std::ops::Deref for FrozenParams<'_> {
    type Target = ParamStore;
    fn deref(&self) -> &ParamStore {
        self.params
    }
}

impl Drop for FrozenParams<'_> {
    fn drop(&mut self) {
        let mut live = lock();
        if let Some(i) = live.iter().position(|&(_, id)| id == self.id) {
            live.swap_remove(i);
        }
    }
}

/// The id of a live [`FrozenParams`] over `params` (the same store, not an equal copy), if
/// any: while it lives, every value of `params` keeps its bits.
pub(crate) fn frozen_id(params: &ParamStore) -> Option<u64> {
    let addr = address(params)?;
    lock().iter().find(|&&(a, _)| a == addr).map(|&(_, id)| id)
}

/// The store's identity: the address of its parameter list (none when empty, whose pointer
/// is shared by every empty list).
fn address(params: &ParamStore) -> Option<usize> {
    (params.params.capacity() > 0).then_some(params.params.as_ptr() as usize)
}

fn lock() -> std::sync::MutexGuard<'static, Vec<(usize, u64)>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UNetConfig;
    use crate::params::spec_layout;

    #[test]
    fn registered_exactly_while_the_guard_lives() {
        let a = ParamStore::zeros(&spec_layout(&UNetConfig::spec_mnist()));
        let b = a.clone();
        assert_eq!(frozen_id(&a), None);
        let fa = FrozenParams::new(&a);
        let id = frozen_id(&a).expect("registered");
        assert_eq!(
            frozen_id(&fa),
            Some(id),
            "through the guard: the same store"
        );
        assert_eq!(frozen_id(&b), None, "an equal copy is another store");
        let fb = FrozenParams::new(&b);
        assert_ne!(frozen_id(&b), Some(id));
        drop(fa);
        assert_eq!(frozen_id(&a), None);
        assert!(frozen_id(&b).is_some());
        drop(fb);
        let again = FrozenParams::new(&a);
        assert!(
            frozen_id(&a).is_some_and(|i| i != id),
            "a new guard, a new id"
        );
        drop(again);
        let empty = ParamStore { params: Vec::new() };
        let _fe = FrozenParams::new(&empty);
        assert_eq!(frozen_id(&empty), None, "empty stores share an address");
    }
}
