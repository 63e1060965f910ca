//! The model blob: CRC-32 against its published check value, a write/parse round trip with
//! 16-byte alignment, one test per typed error (each made by editing one field of a valid blob
//! and, where the edit is structural, recomputing the CRC so that the structural check is the
//! one that fires), and a deterministic fuzz loop that mutates valid blobs and requires parse
//! and every accessor to return, never panic.

use ambient_core::int8::blob::{Blob, BlobConfig, BlobError, DType, HEADER_LEN};
use ambient_core::int8::blob_writer::{blob_len, write_blob, TensorSpec};
use ambient_core::int8::crc32::crc32;
use ambient_core::AmbientRng;

fn config() -> BlobConfig {
    BlobConfig {
        img_channels: 1,
        img_resolution: 28,
        ch: 32,
        blocks: 1,
        groups: 8,
        levels: 3,
        mult: [1, 2, 2, 0],
        sigma_data: 0.5,
        sigma: 0.1,
    }
}

const W: [i8; 6] = [1, -2, 3, -4, 5, -128];
const B: [i32; 2] = [70_000, -1];
const G: [f32; 3] = [0.5, -1.25, 3.0];

/// A valid blob in a 16-byte aligned buffer (a `Vec<u128>` viewed as bytes).
fn valid_blob() -> (Vec<u128>, usize) {
    let tensors = [
        TensorSpec::i8("in_conv.weight", &[2, 3], &W),
        TensorSpec::i32("in_conv.bias", &[2], &B),
        TensorSpec::f32("out_norm.weight", &[1, 3], &G),
    ];
    let len = blob_len(&tensors).unwrap();
    let mut buf = vec![0u128; len.div_ceil(16)];
    let n = write_blob(&config(), &tensors, bytemuck::cast_slice_mut(&mut buf)).unwrap();
    assert_eq!(n, len);
    (buf, len)
}

fn put(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn get(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn fix_crc(bytes: &mut [u8]) {
    let total = get(bytes, 16) as usize;
    let crc = crc32(&bytes[16..total]);
    put(bytes, 12, crc);
}

/// Table entry `i`, field `k` (0 name_offset, 1 name_len, 2 dtype, 3 rank, 4..8 dims,
/// 8 data_offset, 9 byte_len).
fn field(i: usize, k: usize) -> usize {
    HEADER_LEN + 40 * i + 4 * k
}

#[test]
fn crc32_check_value() {
    // The CRC-32/ISO-HDLC catalogue's check value: crc("123456789") = 0xCBF43926.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
    // One bit flipped changes it.
    assert_ne!(crc32(b"123456788"), 0xCBF4_3926);
}

#[test]
fn round_trip() {
    let (buf, len) = valid_blob();
    let bytes: &[u8] = bytemuck::cast_slice(&buf);
    let blob = Blob::parse(&bytes[..len]).unwrap();
    assert_eq!(blob.config, config());
    assert_eq!(blob.len(), 3);
    let w = blob.find("in_conv.weight").unwrap();
    assert_eq!((w.dtype, w.shape()), (DType::I8, &[2u32, 3][..]));
    assert_eq!(w.as_i8().unwrap(), &W);
    assert_eq!(w.as_i32(), Err(BlobError::WrongDtype));
    let b = blob.find("in_conv.bias").unwrap();
    assert_eq!(b.as_i32().unwrap(), &B);
    let g = blob.tensor(2).unwrap();
    assert_eq!(g.name, "out_norm.weight");
    assert_eq!(g.shape(), &[1, 3]);
    assert_eq!(g.as_f32().unwrap(), &G);
    assert_eq!(blob.find("nope"), Err(BlobError::NotFound));
    assert_eq!(blob.tensor(3), Err(BlobError::NotFound));
    // Every tensor's data starts 16-byte aligned relative to the blob, and the blob parses the
    // same with trailing flash padding.
    for i in 0..3 {
        let t = blob.tensor(i).unwrap();
        assert_eq!(
            (t.bytes.as_ptr() as usize - bytes.as_ptr() as usize) % 16,
            0
        );
    }
    assert!(Blob::parse(bytes).is_ok());
}

#[test]
fn truncated() {
    let (buf, len) = valid_blob();
    let bytes: &[u8] = bytemuck::cast_slice(&buf);
    assert_eq!(
        Blob::parse(&bytes[..10]).unwrap_err(),
        BlobError::Truncated {
            needed: HEADER_LEN,
            got: 10
        }
    );
    for cut in HEADER_LEN..len {
        assert_eq!(
            Blob::parse(&bytes[..cut]).unwrap_err(),
            BlobError::Truncated {
                needed: len,
                got: cut
            }
        );
    }
}

#[test]
fn wrong_magic_version_crc_header() {
    let (buf, len) = valid_blob();
    let good: &[u8] = bytemuck::cast_slice(&buf);
    let mut b = good[..len].to_vec();
    b[0] = b'X';
    assert_eq!(Blob::parse(&b).unwrap_err(), BlobError::BadMagic);

    let mut b = good[..len].to_vec();
    put(&mut b, 8, 2);
    assert_eq!(
        Blob::parse(&b).unwrap_err(),
        BlobError::UnsupportedVersion(2)
    );

    // A flipped data byte: the CRC catches it.
    let mut b = good[..len].to_vec();
    b[len - 20] ^= 0x10;
    assert!(matches!(
        Blob::parse(&b).unwrap_err(),
        BlobError::BadCrc { .. }
    ));

    let mut b = good[..len].to_vec();
    put(&mut b, 72, 1);
    fix_crc(&mut b);
    assert!(matches!(
        Blob::parse(&b).unwrap_err(),
        BlobError::BadHeader(_)
    ));

    // A tensor count whose table would run past the end.
    let mut b = good[..len].to_vec();
    put(&mut b, 20, 1000);
    fix_crc(&mut b);
    assert!(matches!(
        Blob::parse(&b).unwrap_err(),
        BlobError::BadHeader(_)
    ));

    let mut b = good[..len].to_vec();
    put(&mut b, 16, 40);
    assert!(matches!(
        Blob::parse(&b).unwrap_err(),
        BlobError::BadHeader(_)
    ));
}

#[test]
fn bad_config() {
    let (buf, len) = valid_blob();
    let good: &[u8] = bytemuck::cast_slice(&buf);
    for (at, v) in [
        (24, 0),                   // img_channels
        (28, 30),                  // 30 is not divisible by 2^(3 - 1)
        (40, 5),                   // groups 5 does not divide ch 32
        (44, 5),                   // levels
        (60, 1),                   // mult past levels must be 0
        (64, f32::NAN.to_bits()),  // sigma_data
        (68, (-0.1f32).to_bits()), // sigma
    ] {
        let mut b = good[..len].to_vec();
        put(&mut b, at, v);
        fix_crc(&mut b);
        assert!(
            matches!(Blob::parse(&b).unwrap_err(), BlobError::BadConfig(_)),
            "field at {at}"
        );
    }
}

#[test]
fn bad_tensors() {
    let (buf, len) = valid_blob();
    let good: &[u8] = bytemuck::cast_slice(&buf);
    let edit = |i: usize, k: usize, v: u32| {
        let mut b = good[..len].to_vec();
        put(&mut b, field(i, k), v);
        fix_crc(&mut b);
        Blob::parse(&b).unwrap_err()
    };
    // Data offset moved by 4: still in bounds, no longer 16-byte aligned.
    let off = get(good, field(1, 8));
    assert_eq!(edit(1, 8, off + 4), BlobError::Misaligned { index: 1 });
    // Data offset past the end, and into the header.
    assert_eq!(
        edit(1, 8, (len as u32).div_ceil(16) * 16),
        BlobError::OutOfBounds { index: 1 }
    );
    assert_eq!(edit(1, 8, 0), BlobError::OutOfBounds { index: 1 });
    // Dims whose product overflows (2^31 * 2^31 * 2^31 elements), or disagrees with byte_len.
    let mut b = good[..len].to_vec();
    put(&mut b, field(0, 3), 3);
    for k in 4..7 {
        put(&mut b, field(0, k), 1 << 31);
    }
    fix_crc(&mut b);
    assert_eq!(
        Blob::parse(&b).unwrap_err(),
        BlobError::BadShape { index: 0 }
    );
    assert_eq!(edit(0, 4, 3), BlobError::BadShape { index: 0 });
    // A consistent but huge shape: byte_len 2^32 - 4 exceeds the blob.
    let mut b = good[..len].to_vec();
    put(&mut b, field(1, 4), (1 << 30) - 1);
    put(&mut b, field(1, 9), ((1u64 << 32) - 4) as u32);
    fix_crc(&mut b);
    assert_eq!(
        Blob::parse(&b).unwrap_err(),
        BlobError::OutOfBounds { index: 1 }
    );
    // dtype, rank, a dim past rank, a zero dim.
    assert_eq!(edit(2, 2, 9), BlobError::BadShape { index: 2 });
    assert_eq!(edit(2, 3, 0), BlobError::BadShape { index: 2 });
    assert_eq!(edit(2, 3, 5), BlobError::BadShape { index: 2 });
    assert_eq!(edit(2, 7, 1), BlobError::BadShape { index: 2 });
    assert_eq!(edit(2, 4, 0), BlobError::BadShape { index: 2 });
    // Names: empty, past the end, and a duplicate (tensor 1 pointed at tensor 0's name).
    assert_eq!(edit(0, 1, 0), BlobError::BadName { index: 0 });
    assert_eq!(edit(0, 0, len as u32), BlobError::OutOfBounds { index: 0 });
    let mut b = good[..len].to_vec();
    let (n0, l0) = (get(good, field(0, 0)), get(good, field(0, 1)));
    put(&mut b, field(1, 0), n0);
    put(&mut b, field(1, 1), l0);
    fix_crc(&mut b);
    assert_eq!(
        Blob::parse(&b).unwrap_err(),
        BlobError::BadName { index: 1 }
    );
    // A name that is not UTF-8.
    let mut b = good[..len].to_vec();
    b[n0 as usize] = 0xFF;
    fix_crc(&mut b);
    assert_eq!(
        Blob::parse(&b).unwrap_err(),
        BlobError::BadName { index: 0 }
    );
}

#[test]
fn typed_view_needs_an_aligned_address() {
    // The same blob one byte into an aligned buffer: it parses (offsets are relative), int8
    // views work, and 4-byte views report the misalignment instead of copying or panicking.
    let (buf, len) = valid_blob();
    let good: &[u8] = bytemuck::cast_slice(&buf);
    let mut shifted = vec![0u128; buf.len() + 1];
    let s: &mut [u8] = bytemuck::cast_slice_mut(&mut shifted);
    s[1..1 + len].copy_from_slice(&good[..len]);
    let blob = Blob::parse(&s[1..1 + len]).unwrap();
    assert_eq!(blob.find("in_conv.weight").unwrap().as_i8().unwrap(), &W);
    assert_eq!(
        blob.find("in_conv.bias").unwrap().as_i32(),
        Err(BlobError::UnalignedView)
    );
}

#[test]
fn writer_rejects_bad_input() {
    let mut buf = vec![0u8; 4096];
    let ok = [TensorSpec::i8("a", &[6], &W)];
    assert!(write_blob(&config(), &ok, &mut buf).is_ok());
    assert!(write_blob(&config(), &ok, &mut buf[..100]).is_err());
    for bad in [
        [TensorSpec::i8("a", &[5], &W)],
        [TensorSpec::i8("", &[6], &W)],
        [TensorSpec::i8("a", &[], &W)],
        [TensorSpec::i8("a", &[6, 1, 1, 1, 1], &W)],
    ] {
        assert!(matches!(
            write_blob(&config(), &bad, &mut buf),
            Err(BlobError::BadWrite(_))
        ));
    }
    let dup = [TensorSpec::i8("a", &[6], &W), TensorSpec::i8("a", &[6], &W)];
    assert!(write_blob(&config(), &dup, &mut buf).is_err());
    let mut c = config();
    c.groups = 0;
    assert!(matches!(
        write_blob(&c, &ok, &mut buf),
        Err(BlobError::BadConfig(_))
    ));
}

/// Parse must return (Ok or Err) on any mutation; when it returns Ok, every accessor must too.
/// Half the mutants get their CRC recomputed so that they reach the structural checks.
#[test]
fn fuzz_mutations_never_panic() {
    let (buf, len) = valid_blob();
    let good: &[u8] = bytemuck::cast_slice(&buf);
    let mut rng = AmbientRng::new(2024);
    let mut mutant = vec![0u128; buf.len()];
    let mut parsed = 0;
    for round in 0..20_000 {
        let b: &mut [u8] = bytemuck::cast_slice_mut(&mut mutant);
        b.copy_from_slice(good);
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(len as u32) as usize;
            b[at] = match rng.below(3) {
                0 => rng.below(256) as u8,
                1 => b[at] ^ (1 << rng.below(8)),
                _ => [0x00, 0xFF, 0x80, 0x7F][rng.below(4) as usize],
            };
        }
        let mut end = len;
        if rng.below(8) == 0 {
            end = rng.below(len as u32 + 1) as usize;
        }
        if round % 2 == 0 && get(b, 16) as usize <= len && get(b, 16) >= 16 {
            fix_crc(b);
        }
        if let Ok(blob) = Blob::parse(&b[..end]) {
            parsed += 1;
            for i in 0..blob.len() {
                let t = blob.tensor(i).unwrap();
                let _ = (t.as_i8(), t.as_i32(), t.as_f32(), t.shape(), t.len());
                assert_eq!(blob.find(t.name).unwrap(), t);
            }
        }
    }
    // Some mutants must survive (e.g. a changed weight byte with a fixed CRC), or the loop
    // never exercised the accessors.
    assert!(parsed > 100, "only {parsed} mutants parsed");
}
