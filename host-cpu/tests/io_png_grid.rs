//! PNG grids: tile placement, padding and the spec's u8 rounding checked pixel by pixel on a
//! decoded file, missing measurement pixels painted blue in the pairs grid, and clear errors
//! for NaN, unsupported channel counts and unwritable outputs.

mod io_util;

use std::fs;
use std::path::Path;

use ambient_cpu::error::HostError;
use ambient_cpu::io::png_grid::{write_grid, write_pairs_grid, MISSING_RGB, PAD, PAD_VALUE};
use io_util::Scratch;

/// Decodes a PNG with the png crate: (width, height, colour type, pixels).
fn decode(path: &Path) -> (usize, usize, png::ColorType, Vec<u8>) {
    let dec = png::Decoder::new(fs::File::open(path).unwrap());
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (
        info.width as usize,
        info.height as usize,
        info.color_type,
        buf,
    )
}

#[test]
fn gray_grid_places_tiles_with_padding_and_spec_rounding() {
    let dir = Scratch::new("grid-gray");
    let p = dir.path("g.png");
    // 3 images of 2 x 2 in 2 columns: 2 rows, the 4th slot empty.
    let imgs: Vec<f32> = vec![
        -1.0, 1.0, 0.0, 0.5, // image 0: u8 0, 255, 128 (127.5 rounds up), 191 (191.25)
        -0.5, -0.5, -0.5, -0.5, // image 1: round(63.75) = 64
        2.0, -3.0, 1.0, -1.0, // image 2: clamps to 255, 0
    ];
    write_grid(&p, (3, 1, 2, 2), &imgs, 2).unwrap();
    let (w, h, ct, px) = decode(&p);
    assert_eq!(ct, png::ColorType::Grayscale);
    // width = 2 tiles * 2 + 3 pads * 2 = 10; height the same with 2 rows.
    assert_eq!((w, h), (2 * 2 + 3 * PAD, 2 * 2 + 3 * PAD));
    let at = |y: usize, x: usize| px[y * w + x];
    let (o0, o1) = (PAD, PAD + 2 + PAD); // tile origins along an axis
    assert_eq!(
        [
            at(o0, o0),
            at(o0, o0 + 1),
            at(o0 + 1, o0),
            at(o0 + 1, o0 + 1)
        ],
        [0, 255, 128, 191]
    );
    assert_eq!([at(o0, o1), at(o0 + 1, o1 + 1)], [64, 64]);
    assert_eq!(
        [
            at(o1, o0),
            at(o1, o0 + 1),
            at(o1 + 1, o0),
            at(o1 + 1, o0 + 1)
        ],
        [255, 0, 255, 0]
    );
    // Padding and the empty 4th slot are PAD_VALUE.
    assert_eq!(
        [
            at(0, 0),
            at(o0, o0 + 2),
            at(o1 + 1, o1 + 1),
            at(h - 1, w - 1)
        ],
        [PAD_VALUE; 4]
    );
    let padding = px.iter().filter(|&&v| v == PAD_VALUE).count();
    // Every pixel is padding except the 12 image pixels, of which image 0 has one 255 and
    // image 2 two: 100 - 12 + 3.
    assert_eq!(padding, w * h - 12 + 3);
}

#[test]
fn rgb_grid_keeps_channels() {
    let dir = Scratch::new("grid-rgb");
    let p = dir.path("g.png");
    // One RGB 1 x 1 image: channels -1, 0, 1.
    write_grid(&p, (1, 3, 1, 1), &[-1.0, 0.0, 1.0], 4).unwrap();
    let (w, h, ct, px) = decode(&p);
    assert_eq!((w, h, ct), (1 + 2 * PAD, 1 + 2 * PAD, png::ColorType::Rgb));
    let o = (PAD * w + PAD) * 3;
    assert_eq!(&px[o..o + 3], &[0, 128, 255]);
}

#[test]
fn pairs_grid_paints_missing_pixels_and_shows_the_restoration_beside() {
    let dir = Scratch::new("grid-pairs");
    let p = dir.path("pairs.png");
    // 1 gray image of 1 x 2: pixel 0 observed (-1), pixel 1 missing (garbage 0.3).
    let meas = [-1.0, 0.3];
    let masks = [1.0, 0.0];
    let rest = [-1.0, 1.0];
    write_pairs_grid(&p, (1, 1, 1, 2), &meas, &masks, &rest, 3).unwrap();
    let (w, h, ct, px) = decode(&p);
    assert_eq!(ct, png::ColorType::Rgb);
    assert_eq!((w, h), (2 * 2 + 3 * PAD, 1 + 2 * PAD));
    let rgb = |y: usize, x: usize| {
        [
            px[(y * w + x) * 3],
            px[(y * w + x) * 3 + 1],
            px[(y * w + x) * 3 + 2],
        ]
    };
    assert_eq!(rgb(PAD, PAD), [0, 0, 0]);
    assert_eq!(rgb(PAD, PAD + 1), MISSING_RGB);
    let r = PAD + 2 + PAD;
    assert_eq!([rgb(PAD, r), rgb(PAD, r + 1)], [[0, 0, 0], [255, 255, 255]]);
    assert_ne!(
        MISSING_RGB, [MISSING_RGB[0]; 3],
        "the missing colour is not a gray a measurement could have"
    );
}

#[test]
fn bad_inputs_and_outputs_are_errors_that_leave_nothing() {
    let dir = Scratch::new("grid-bad");
    let p = dir.path("g.png");
    let e = write_grid(&p, (1, 1, 1, 2), &[0.0, f32::NAN], 1).unwrap_err();
    assert!(
        matches!(e, HostError::NonFinite { .. })
            && e.to_string().contains("g.png")
            && e.to_string().contains("[0, 0, 0, 1]"),
        "{e}"
    );
    let e = write_grid(&p, (1, 2, 1, 1), &[0.0, 0.0], 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 or 3 channels"), "{e}");
    assert!(write_grid(&p, (1, 1, 1, 1), &[0.0], 0).is_err());
    assert!(write_grid(&p, (2, 1, 1, 1), &[0.0], 1).is_err());
    assert!(write_pairs_grid(&p, (1, 1, 1, 1), &[0.0], &[0.0, 1.0], &[0.0], 1).is_err());
    fs::write(dir.path("plain"), b"x").unwrap();
    let e = write_grid(&dir.path("plain").join("g.png"), (1, 1, 1, 1), &[0.0], 1).unwrap_err();
    assert!(matches!(e, HostError::Unwritable { .. }), "{e}");
    assert_eq!(dir.entries(), vec!["plain"]);
}
