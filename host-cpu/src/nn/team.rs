//! The layers' parallel loops: [`for_each`] runs a closure on every item, shared out across the
//! workers. Inside the rayon pool (training, batches of images: `UNet` runs those layers on a
//! worker) it is rayon's `for_each`. Called from outside the pool, as a single-image
//! restoration runs its layers on the caller's thread (about 70 parallel regions a pass of the
//! spec network, 2 ms in all), a team of helper threads that spin between regions takes the
//! items instead. Rayon's idle workers go to sleep within microseconds, and on this project's
//! 2-core VM waking a sleeping worker (a halted virtual CPU) is sometimes slow. 16
//! interleaved pairs of 150-call blocks of one restoration, rayon against the team: median
//! ratio 1.05 in the team's favour (medians 2.21 and 2.08 ms); equal where both ran fast
//! (2.02/2.03, 2.08/2.08 ms), better where rayon was slow (2.90/2.14, 2.55/2.03 ms). PyTorch's
//! OpenMP threads spin the same way.
//!
//! The team: `threads() - 1` helpers (rayon's thread count when first used), one region at a
//! time. The caller publishes the region's work and bumps an epoch; every helper, spinning
//! on the epoch (for [`SPIN`] after its last region, then asleep on a condition variable),
//! runs the work and reports done; the caller works too, then waits for every helper before
//! it returns. Participant p takes the items from p n / P on, in order, then whatever is left
//! (so each works on the same stretch of the image region after region, as with rayon's
//! halves, and in its own caches). A region entered while another thread holds the team goes
//! to rayon, and one entered from inside a region (a nested loop) runs on its thread alone.
//! Which worker takes an item never changes what the item computes, so the results are the
//! bits of the rayon and sequential paths.

use rayon::prelude::*;
use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::{Duration, Instant};

/// How long a helper spins on the epoch after a region before it sleeps: longer than the
/// sequential stretches between the regions of a network pass (tens of microseconds), short
/// enough that an idle process gives its cores back at once.
const SPIN: Duration = Duration::from_millis(1);

/// `f(item)` for every item, shared out across the workers (see the module's comment); `init`
/// makes a worker's state, at most once per worker and region, before its first item.
pub(crate) fn for_each_init<T: Send, S>(
    items: Vec<T>,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, T) + Sync + Send,
) {
    if items.len() <= 1 || IN_REGION.get() {
        let mut s = None;
        return items
            .into_iter()
            .for_each(|t| f(s.get_or_insert_with(&init), t));
    }
    if rayon::current_thread_index().is_none() {
        if let Some(team) = Team::get() {
            // (A panic in an earlier region poisons the lock; the team is whole again once
            // that region has returned, so the poison is ignored.)
            let region = match team.lock.try_lock() {
                Ok(region) => Some(region),
                Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(region) = region {
                return team.run(region, items, init, f);
            }
        }
    }
    items.into_par_iter().for_each_init(init, f);
}

/// `f(item)` for every item, as [`for_each_init`] without state.
pub(crate) fn for_each<T: Send>(items: Vec<T>, f: impl Fn(T) + Sync + Send) {
    for_each_init(items, || (), |_, t| f(t));
}

thread_local! {
    /// Whether this thread runs a team region's work now (a helper always does).
    static IN_REGION: Cell<bool> = const { Cell::new(false) };
}

/// The region's work as participant p (the caller 0, helper i i + 1) runs it: claim items
/// until none are left.
type Work<'a> = dyn Fn(usize) + Sync + 'a;

struct Team {
    /// Held by the thread that runs a region.
    lock: Mutex<()>,
    helpers: usize,
    shared: &'static Shared,
}

/// What the caller and the helpers share.
struct Shared {
    /// Bumped once per region, after `work` and `running` are set.
    epoch: AtomicU64,
    /// The current region's work, valid from the epoch's bump until `running` is back at 0
    /// (the caller does not return before, so the borrow it erases outlives every use).
    work: UnsafeCell<Option<*const Work<'static>>>,
    /// Helpers that have not finished the current region.
    running: AtomicUsize,
    /// Helpers asleep (guarded by the mutex, which the caller takes after each bump).
    sleepers: Mutex<usize>,
    wake: Condvar,
    /// The first panic of a helper in the current region, for the caller to resume.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `work` is written only by the thread holding `Team::lock`, while every helper is
// between regions (`running` is 0), and read by helpers only after they observe the epoch
// bump that publishes it (release / acquire); the work behind the pointer is `Sync`.
unsafe impl Sync for Shared {}

impl Team {
    /// The process's team, started on first use; none on a single worker.
    fn get() -> Option<&'static Team> {
        static TEAM: OnceLock<Option<Team>> = OnceLock::new();
        TEAM.get_or_init(|| {
            let helpers = super::threads() - 1;
            if helpers == 0 {
                return None;
            }
            let shared: &'static Shared = Box::leak(Box::new(Shared {
                epoch: AtomicU64::new(0),
                work: UnsafeCell::new(None),
                running: AtomicUsize::new(0),
                sleepers: Mutex::new(0),
                wake: Condvar::new(),
                panic: Mutex::new(None),
            }));
            for i in 0..helpers {
                let spawned = std::thread::Builder::new()
                    .name(format!("ambient-team-{i}"))
                    .spawn(move || helper(shared, i + 1));
                if spawned.is_err() {
                    // No thread (limits): the helpers already started would wait forever
                    // for their first region, so the team is never used.
                    return None;
                }
            }
            Some(Team {
                lock: Mutex::new(()),
                helpers,
                shared,
            })
        })
        .as_ref()
    }

    fn run<T: Send, S>(
        &self,
        _region: MutexGuard<'_, ()>,
        items: Vec<T>,
        init: impl Fn() -> S + Sync,
        f: impl Fn(&mut S, T) + Sync,
    ) {
        let n = items.len();
        let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
        // Participant p starts at item p n / P and goes on in order, wrapping round, taking
        // every item not yet taken: each works on its own stretch first (as rayon's halves
        // do: the same stretch of the image region after region, so in its own caches), then
        // helps with the rest.
        let parts = self.helpers + 1;
        let work = |p: usize| {
            let mut state = None;
            let start = p * n / parts;
            for i in (start..n).chain(0..start) {
                let taken = lock(&slots[i]).take();
                if let Some(item) = taken {
                    f(state.get_or_insert_with(&init), item);
                }
            }
        };
        let shared = self.shared;
        let erased: &Work<'_> = &work;
        // SAFETY: see `Shared::work`: every helper is done with the previous region, and
        // this function does not return (nor unwind) before they are done with this one.
        unsafe {
            *shared.work.get() = Some(std::mem::transmute::<&Work<'_>, &'static Work<'static>>(
                erased,
            ));
        }
        shared.running.store(self.helpers, Ordering::Relaxed);
        shared.epoch.fetch_add(1, Ordering::SeqCst);
        if *lock(&shared.sleepers) > 0 {
            shared.wake.notify_all();
        }
        IN_REGION.set(true);
        let mine = panic::catch_unwind(AssertUnwindSafe(|| work(0)));
        IN_REGION.set(false);
        let mut spins = 0u32;
        while shared.running.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) {
                // A helper that has lost its core: let it have this one.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        if let Some(p) = lock(&shared.panic).take() {
            panic::resume_unwind(p);
        }
        if let Err(p) = mine {
            panic::resume_unwind(p);
        }
    }
}

/// A helper's life: wait for a region (spinning, then asleep), run its work, report done.
fn helper(shared: &'static Shared, p: usize) {
    IN_REGION.set(true);
    let mut seen = 0u64;
    loop {
        let idle = Instant::now();
        let mut spins = 0u32;
        loop {
            let e = shared.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && idle.elapsed() > SPIN {
                let mut asleep = lock(&shared.sleepers);
                *asleep += 1;
                while shared.epoch.load(Ordering::SeqCst) == seen {
                    asleep = shared.wake.wait(asleep).unwrap_or_else(|e| e.into_inner());
                }
                *asleep -= 1;
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: published by the epoch bump just observed, valid until `running` is 0.
        let work = unsafe { (*shared.work.get()).expect("a region's work") };
        // SAFETY: as above; the caller waits for this helper before the work goes away.
        if let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| unsafe { (*work)(p) })) {
            lock(&shared.panic).get_or_insert(e);
        }
        shared.running.fetch_sub(1, Ordering::Release);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item once, from outside the pool (the team), inside it (rayon) and nested;
    /// each worker's state made once per region at most.
    #[test]
    fn every_item_once_on_every_path() {
        // `bound`: the most worker states a region may make (the team: one per worker).
        let check = |bound: Option<usize>| {
            let hits: Vec<AtomicUsize> = (0..97).map(|_| AtomicUsize::new(0)).collect();
            let inits = AtomicUsize::new(0);
            for_each_init(
                (0..97).collect(),
                || inits.fetch_add(1, Ordering::Relaxed),
                |_, i: usize| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                    // A nested loop runs on this thread alone.
                    let inner: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
                    for_each((0..3).collect(), |j: usize| {
                        inner[j].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(inner.iter().all(|v| v.load(Ordering::Relaxed) == 1));
                },
            );
            assert!(hits.iter().all(|v| v.load(Ordering::Relaxed) == 1));
            if let Some(b) = bound {
                assert!(inits.load(Ordering::Relaxed) <= b);
            }
        };
        for _ in 0..200 {
            // Alone in this test binary's process? Other tests may hold the team, and then
            // rayon (any number of states) takes the region.
            check(None);
        }
        // The team's own bound, where this thread is sure to get it.
        if let Some(team) = Team::get() {
            let region = lock(&team.lock);
            let inits = AtomicUsize::new(0);
            let hits: Vec<AtomicUsize> = (0..97).map(|_| AtomicUsize::new(0)).collect();
            team.run(
                region,
                (0..97).collect(),
                || inits.fetch_add(1, Ordering::Relaxed),
                |_, i: usize| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                },
            );
            assert!(hits.iter().all(|v| v.load(Ordering::Relaxed) == 1));
            assert!(inits.load(Ordering::Relaxed) <= team.helpers + 1);
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(|| check(None));
        // Several callers at once: one has the team, the others go to rayon.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..50).for_each(|_| check(None)));
            }
        });
    }

    /// A panic in an item reaches the caller, and the team goes on working.
    #[test]
    fn a_panic_reaches_the_caller() {
        for _ in 0..3 {
            let r = panic::catch_unwind(|| {
                for_each((0..16).collect(), |i: usize| {
                    if i == 11 {
                        panic!("item 11");
                    }
                })
            });
            let msg = r.expect_err("the panic comes back");
            assert_eq!(msg.downcast_ref::<&str>(), Some(&"item 11"));
        }
        let sum = AtomicUsize::new(0);
        for_each((1..=100).collect(), |i: usize| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 5050);
        // The team itself, not only the rayon fallback, takes regions after the panic (its
        // lock is poisoned by then): items long enough that its helper takes some. Another
        // test may hold the team at that moment, so a few tries.
        if Team::get().is_none() {
            return;
        }
        let on_team = (0..20).any(|_| {
            let seen = AtomicUsize::new(0);
            for_each((0..8).collect(), |_: usize| {
                std::thread::sleep(Duration::from_micros(300));
                let name = std::thread::current().name().map(str::to_owned);
                if name.is_some_and(|n| n.starts_with("ambient-team-")) {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
            });
            seen.load(Ordering::Relaxed) > 0
        });
        assert!(
            on_team,
            "the team's helpers never took an item after a panic"
        );
    }
}
