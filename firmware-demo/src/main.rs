//! Int8 single-step restoration on a Cortex-M4F, run under QEMU (mps2-an386): the quantized
//! model blob and a handful of corrupted MNIST measurements live in flash (`include_bytes!`),
//! the executor of `ambient_core::int8::restore` runs in a static scratch arena, no heap. For
//! each measurement it prints the CRC-32 of the restoration (its f32 values, little-endian) and
//! its PSNR against the clean digit, compares the CRC with the one the host's int8 runner wrote
//! beside the inputs (`assets/expected.bin`), and exits through semihosting with success only
//! if every CRC matches. It also reports the peak stack use, measured by painting the stack.
#![no_std]
#![no_main]

use ambient_core::int8::crc32::crc32;
use ambient_core::int8::model::Int8Model;
use ambient_core::int8::restore::restore;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};

mod assets {
    include!("../assets/meta.rs");
}
mod stack;

/// The blob at a 16-byte aligned address, as its typed views require.
#[repr(C, align(16))]
struct Aligned<T: ?Sized>(T);

static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!("../assets/model.blob"));
/// Per image: `IMAGE_LEN` measurement pixels (u8), then `IMAGE_LEN` mask bytes (1 observed).
static INPUTS: &[u8] = include_bytes!("../assets/inputs.bin");
/// Per image: `IMAGE_LEN` clean pixels (u8).
static CLEAN: &[u8] = include_bytes!("../assets/clean.bin");
/// Per image: the host's CRC-32 of the restoration, u32 LE.
static EXPECTED: &[u8] = include_bytes!("../assets/expected.bin");

const N: usize = assets::IMAGE_LEN;

/// The spec's `u8 / 127.5 - 1`.
fn unit(u: u8) -> f32 {
    u as f32 / 127.5 - 1.0
}

/// PSNR in dB of `x` against the clean `u8` image (range 2 on [-1, 1], as the host's metric).
fn psnr(clean: &[u8], x: &[f32]) -> f64 {
    let mut se = 0.0f64;
    for (&c, &v) in clean.iter().zip(x) {
        let d = (unit(c) - v.clamp(-1.0, 1.0)) as f64;
        se += d * d;
    }
    let mse = se / x.len() as f64;
    if mse == 0.0 {
        100.0
    } else {
        10.0 * libm::log10(4.0 / mse)
    }
}

/// SysTick ticks (24-bit, down-counting from its reload) between two readings.
fn ticks(start: u32, end: u32) -> u32 {
    start.wrapping_sub(end) & 0x00FF_FFFF
}

fn run(syst: &mut SYST) -> Result<bool, ambient_core::int8::model::ModelError> {
    let model = Int8Model::from_blob(&BLOB.0)?;
    let scratch = cortex_m::singleton!(: [u32; assets::SCRATCH_WORDS] = [0; assets::SCRATCH_WORDS])
        .expect("scratch taken once");
    let io = cortex_m::singleton!(: [[f32; N]; 3] = [[0.0; N]; 3]).expect("buffers taken once");
    let [y, m, out] = io;
    hprintln!(
        "model: {} bytes, sigma {}, scratch {} words (have {})",
        BLOB.0.len(),
        model.config().sigma,
        model.scratch_words(),
        scratch.len()
    );
    let mut all = assets::IMAGES > 0;
    let mut total_psnr = 0.0;
    for i in 0..assets::IMAGES {
        let input = &INPUTS[2 * N * i..2 * N * (i + 1)];
        for k in 0..N {
            let observed = input[N + k] != 0;
            m[k] = if observed { 1.0 } else { 0.0 };
            y[k] = if observed { unit(input[k]) } else { 0.0 };
        }
        syst.clear_current();
        let start = SYST::get_current();
        restore(&model, y, m, scratch, out)?;
        let elapsed = ticks(start, SYST::get_current());
        let mut bytes = [0u8; 4];
        let mut crc_input = [0u8; 4 * N];
        for (k, v) in out.iter().enumerate() {
            bytes.copy_from_slice(&v.to_le_bytes());
            crc_input[4 * k..4 * k + 4].copy_from_slice(&bytes);
        }
        let crc = crc32(&crc_input);
        let mut e = [0u8; 4];
        e.copy_from_slice(&EXPECTED[4 * i..4 * i + 4]);
        let expected = u32::from_le_bytes(e);
        let p = psnr(&CLEAN[N * i..N * (i + 1)], out);
        total_psnr += p;
        let ok = crc == expected;
        all &= ok;
        hprintln!(
            "image {}: crc {:08x} expected {:08x} {} psnr {:.2} dB, {} SysTick ticks \
             (= {} instructions under -icount shift=0)",
            i,
            crc,
            expected,
            if ok { "ok" } else { "MISMATCH" },
            p,
            elapsed,
            40 * elapsed as u64
        );
    }
    hprintln!(
        "mean psnr {:.2} dB over {} images",
        total_psnr / assets::IMAGES as f64,
        assets::IMAGES
    );
    Ok(all)
}

#[entry]
fn main() -> ! {
    stack::paint();
    let mut syst = cortex_m::Peripherals::take().expect("taken once").SYST;
    // The core clock, free-running over the full 24 bits; no interrupt. Under QEMU with
    // `-icount shift=0` one instruction is one virtual nanosecond, so at mps2's 25 MHz a tick
    // is 40 instructions (checked with a counted `subs`/`bne` loop: 2e7 instructions, 5e5
    // ticks).
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(0x00FF_FFFF);
    syst.clear_current();
    syst.enable_counter();
    let result = run(&mut syst);
    hprintln!("stack: {} bytes used at peak", stack::used());
    match result {
        Ok(true) => {
            hprintln!("PASS: every restoration equals the host's bit for bit");
            debug::exit(debug::EXIT_SUCCESS);
        }
        Ok(false) => {
            hprintln!("FAIL: a restoration differs from the host's");
            debug::exit(debug::EXIT_FAILURE);
        }
        Err(e) => {
            hprintln!("FAIL: {}", e);
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    loop {
        cortex_m::asm::bkpt();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::bkpt();
    }
}
