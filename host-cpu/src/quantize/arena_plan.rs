//! Offline planning of the executor's activation arena: from the walk's allocation and
//! release events (`ambient_core::int8::restore::buffer_events`), each buffer's lifetime; then
//! offsets greedy by size, as TFLM's `GreedyMemoryPlanner` does: the largest buffer first, each
//! at the lowest offset that overlaps no already placed buffer whose lifetime meets its own.
//! The executor's own first-fit placement, made online in allocation order, leaves holes
//! between long-lived skip connections; this packs close to the largest live total.

use ambient_core::int8::restore::BufferEvent;

/// The arena offset of each buffer (by allocation index) and the arena's size.
pub fn greedy_plan(events: &[BufferEvent]) -> (Vec<i32>, usize) {
    // (len, start, end): live during events [start, end); never freed = to the end.
    let mut life: Vec<(usize, usize, usize)> = Vec::new();
    for (t, e) in events.iter().enumerate() {
        match *e {
            BufferEvent::Alloc { id, len } => {
                debug_assert_eq!(id, life.len(), "allocations are numbered in order");
                life.push((len, t, usize::MAX));
            }
            BufferEvent::Free { id } => life[id].2 = t,
        }
    }
    let mut order: Vec<usize> = (0..life.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(life[i].0), life[i].1));
    let mut offsets = vec![0usize; life.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut size = 0;
    for i in order {
        let (len, start, end) = life[i];
        let mut clashing: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| life[j].1 < end && start < life[j].2)
            .map(|&j| (offsets[j], offsets[j] + life[j].0))
            .collect();
        clashing.sort_unstable();
        let mut at = 0;
        for (lo, hi) in clashing {
            if lo >= at + len {
                break;
            }
            at = at.max(hi);
        }
        offsets[i] = at;
        size = size.max(at + len);
        placed.push(i);
    }
    (offsets.into_iter().map(|o| o as i32).collect(), size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use BufferEvent::{Alloc, Free};

    #[test]
    fn packs_by_size_around_lifetimes() {
        // x (100) dies before y (150) is made; s (50), made in between, lives on. First fit in
        // allocation order puts s right after x (100..150), so y finds no hole and goes to
        // 150..300: 300 bytes. By hand, greedy by size: y at 0; x shares no time with y, 0;
        // s meets both, so above both, at 150: 200 bytes, the largest live total (s + y).
        let events = [
            Alloc { id: 0, len: 100 },
            Alloc { id: 1, len: 50 },
            Free { id: 0 },
            Alloc { id: 2, len: 150 },
            Free { id: 2 },
        ];
        let (offsets, size) = greedy_plan(&events);
        assert_eq!(offsets, vec![0, 150, 0]);
        assert_eq!(size, 200);
    }
}
