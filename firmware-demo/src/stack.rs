//! Stack-use measurement by painting: fill the unused stack (from the end of the statics,
//! cortex-m-rt's `__sheap`, up to just below the current stack pointer) with a pattern, and
//! later find the lowest word that no longer holds it. The stack grows down from
//! `_stack_start` (the top of RAM), so the peak use is `_stack_start` minus that address.

const PATTERN: u32 = 0xA5C3_5A3C;
/// Left unpainted below the stack pointer: `paint`'s own frame.
const MARGIN: usize = 64;

extern "C" {
    static mut __sheap: u32;
    static mut _stack_start: u32;
}

fn bounds() -> (usize, usize) {
    // Only the symbols' addresses are taken.
    let bottom = core::ptr::addr_of!(__sheap) as usize;
    let top = core::ptr::addr_of!(_stack_start) as usize;
    (bottom, top)
}

/// Paints the free stack. Call first thing in `main`, with interrupts unused.
pub fn paint() {
    let (bottom, _) = bounds();
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = bottom;
    while p + MARGIN < sp {
        // SAFETY: [bottom, sp - MARGIN) is RAM that holds neither statics nor live frames.
        unsafe { core::ptr::write_volatile(p as *mut u32, PATTERN) };
        p += 4;
    }
}

/// Bytes of stack used at the deepest point since [`paint`].
pub fn used() -> usize {
    let (bottom, top) = bounds();
    let mut p = bottom;
    // SAFETY: reads words of RAM between the statics and the top of the stack.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PATTERN {
        p += 4;
    }
    top - p
}
