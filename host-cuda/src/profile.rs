//! Where the time of a training step or a network call goes on the device: between
//! [`start`] and [`finish`], every kernel launch of this thread is bracketed by two CUDA
//! events (its GPU time, summed by kernel name and shape) and every [`phase`] by the host
//! clock (draw the batch, uploads, waits for the stream). Outside that window a launch costs
//! one thread-local check. The events do not synchronize anything, so a profiled step queues
//! work as an unprofiled one does; the difference between the wall time and the GPU's busy
//! time is the time the GPU waited for the host.

use cust::event::{Event, EventFlags};
use cust::stream::Stream;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

struct Profiler {
    /// (kernel and shape, start event, end event), in launch order.
    launches: Vec<(String, Event, Event)>,
    /// Host phases: name -> (count, seconds).
    phases: HashMap<&'static str, (u64, f64)>,
    /// Event creation or recording failed: the report says so instead of guessing.
    broken: Option<String>,
    since: Instant,
}

thread_local! {
    static PROFILE: RefCell<Option<Profiler>> = const { RefCell::new(None) };
}

/// Starts recording (replacing any recording in progress).
pub fn start() {
    PROFILE.with(|p| {
        *p.borrow_mut() = Some(Profiler {
            launches: Vec::new(),
            phases: HashMap::new(),
            broken: None,
            since: Instant::now(),
        })
    });
}

/// Whether a recording is in progress on this thread.
pub fn active() -> bool {
    PROFILE.with(|p| p.borrow().is_some())
}

/// Runs `launch` (one kernel launch on `stream`); while recording, brackets it with events
/// under the key `key()`.
pub(crate) fn launch<R>(
    stream: &Stream,
    key: impl FnOnce() -> String,
    launch: impl FnOnce() -> R,
) -> R {
    if !active() {
        return launch();
    }
    let record = || -> cust::error::CudaResult<Event> {
        let e = Event::new(EventFlags::DEFAULT)?;
        e.record(stream)?;
        Ok(e)
    };
    let begin = record();
    let out = launch();
    let end = record();
    PROFILE.with(|p| {
        if let Some(p) = p.borrow_mut().as_mut() {
            match (begin, end) {
                (Ok(b), Ok(e)) => p.launches.push((key(), b, e)),
                (Err(e), _) | (_, Err(e)) => p.broken = Some(format!("cuEventCreate/Record: {e}")),
            }
        }
    });
    out
}

/// Runs `f`; while recording, adds its host wall time to phase `name`.
pub fn phase<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    if !active() {
        return f();
    }
    let t = Instant::now();
    let out = f();
    let secs = t.elapsed().as_secs_f64();
    PROFILE.with(|p| {
        if let Some(p) = p.borrow_mut().as_mut() {
            let e = p.phases.entry(name).or_default();
            e.0 += 1;
            e.1 += secs;
        }
    });
    out
}

/// Stops recording and returns the table: per kernel and shape, launches, GPU milliseconds in
/// all and their share of the GPU's busy time, largest first (the `top` first rows and the
/// rest summed); then the host phases; then wall time against GPU busy time. Waits for the
/// last event. `None` when nothing was recording.
pub fn finish(top: usize) -> Option<String> {
    let p = PROFILE.with(|p| p.borrow_mut().take())?;
    if let Some((_, _, last)) = p.launches.last() {
        if let Err(e) = last.synchronize() {
            return Some(format!("profile: cuEventSynchronize failed: {e}\n"));
        }
    }
    // Wall time up to the last launch's end, whether or not the caller waited for it.
    let wall = p.since.elapsed().as_secs_f64() * 1e3;
    let mut out = String::new();
    if let Some(e) = &p.broken {
        out.push_str(&format!("profile incomplete: {e}\n"));
    }
    let mut by_key: HashMap<&str, (u64, f64)> = HashMap::new();
    let mut busy = 0.0f64;
    let mut failed = 0usize;
    for (key, b, e) in &p.launches {
        match e.elapsed_time_f32(b) {
            Ok(ms) => {
                let s = by_key.entry(key.as_str()).or_default();
                s.0 += 1;
                s.1 += ms as f64;
                busy += ms as f64;
            }
            Err(_) => failed += 1,
        }
    }
    let mut rows: Vec<_> = by_key.into_iter().collect();
    rows.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    out.push_str(&format!(
        "{:<58} {:>8} {:>10} {:>6}\n",
        "kernel (shape)", "launches", "GPU ms", "share"
    ));
    let share = |ms: f64| if busy > 0.0 { 100.0 * ms / busy } else { 0.0 };
    for (key, (n, ms)) in rows.iter().take(top) {
        out.push_str(&format!(
            "{key:<58} {n:>8} {ms:>10.3} {:>5.1}%\n",
            share(*ms)
        ));
    }
    if rows.len() > top {
        let (n, ms) = rows[top..]
            .iter()
            .fold((0u64, 0.0f64), |acc, (_, (n, ms))| (acc.0 + n, acc.1 + ms));
        let label = format!("({} more kernels and shapes)", rows.len() - top);
        out.push_str(&format!(
            "{label:<58} {n:>8} {ms:>10.3} {:>5.1}%\n",
            share(ms)
        ));
    }
    if failed > 0 {
        out.push_str(&format!("({failed} launches without a time)\n"));
    }
    let mut phases: Vec<_> = p.phases.into_iter().collect();
    phases.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    for (name, (n, s)) in phases {
        out.push_str(&format!(
            "host phase {name:<47} {n:>8} {:>10.3} ms\n",
            s * 1e3
        ));
    }
    out.push_str(&format!(
        "{} launches; GPU busy {busy:.3} ms of {wall:.3} ms wall ({:.0}%)\n",
        p.launches.len(),
        if wall > 0.0 { 100.0 * busy / wall } else { 0.0 }
    ));
    Some(out)
}
