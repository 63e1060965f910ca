//! The corrupted-dataset directory: the writer's files are exactly the hand-built `.npy`
//! files and JSON record, missing pixels are stored as 0 whatever the dataset held there,
//! the reader restores the dataset, and bad inputs or outputs leave no directory behind.

mod io_util;

use std::fs;

use ambient_cpu::error::HostError;
use ambient_cpu::io::corrupted_dir::{load_corrupted_dir, write_corrupted_dir, CorruptionRecord};
use ambient_cpu::io::dataset::CorruptedDataset;
use io_util::{npy_bytes, Scratch};

fn u(v: u8) -> f32 {
    v as f32 / 127.5 - 1.0
}

/// 2 images, C = 2, 1 x 3; image 0 misses pixel 1, image 1 misses pixels 0 and 2. The
/// measurements hold garbage (0.7, NaN) at missing pixels; observed ones are u8 grid values.
fn dataset() -> CorruptedDataset {
    let nan = f32::NAN;
    CorruptedDataset {
        n: 2,
        c: 2,
        h: 1,
        w: 3,
        measurements: vec![
            u(10),
            0.7,
            u(30),
            /* ch 1 */ u(11),
            nan,
            u(31), //
            nan,
            u(200),
            0.7,
            /* ch 1 */ 0.7,
            u(201),
            nan,
        ],
        masks: vec![1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0],
        meta: None,
    }
}

fn record() -> CorruptionRecord {
    CorruptionRecord {
        kind: "random".into(),
        p: 0.5,
        r#box: None,
        seed: 42,
        source: "hand-made".into(),
        count: 2,
        created_by: "io_corrupted_dir test".into(),
    }
}

#[test]
fn writes_the_documented_files_and_reads_them_back() {
    let dir = Scratch::new("cdir-rt");
    let out = dir.path("set");
    write_corrupted_dir(&out, &dataset(), &record()).unwrap();
    assert_eq!(
        io_util::entries(&out),
        vec!["corruption.json", "masks.npy", "measurements.npy"]
    );
    // NHWC u8, 0 at missing pixels.
    let want_meas = npy_bytes(
        "|u1",
        &[2, 1, 3, 2],
        &[10, 11, 0, 0, 30, 31, 0, 0, 200, 201, 0, 0],
    );
    assert_eq!(fs::read(out.join("measurements.npy")).unwrap(), want_meas);
    let want_masks = npy_bytes("|u1", &[2, 1, 3, 1], &[1, 0, 1, 0, 1, 0]);
    assert_eq!(fs::read(out.join("masks.npy")).unwrap(), want_masks);
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("corruption.json")).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"kind": "random", "p": 0.5, "seed": 42, "source": "hand-made", "count": 2, "created_by": "io_corrupted_dir test"})
    );

    let back = load_corrupted_dir(&out).unwrap();
    assert_eq!((back.n, back.c, back.h, back.w), (2, 2, 1, 3));
    assert_eq!(back.masks, dataset().masks);
    let want = [
        u(10),
        0.0,
        u(30),
        u(11),
        0.0,
        u(31),
        0.0,
        u(200),
        0.0,
        0.0,
        u(201),
        0.0,
    ];
    assert_eq!(
        back.measurements
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>(),
        want.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(back.meta, Some(json));
    assert_eq!(dir.entries(), vec!["set"], "no temporary directory left");
}

#[test]
fn bad_datasets_and_unwritable_outputs_leave_nothing() {
    let dir = Scratch::new("cdir-bad");
    let out = dir.path("set");
    let mut ds = dataset();
    ds.masks[4] = 0.5;
    let e = write_corrupted_dir(&out, &ds, &record())
        .unwrap_err()
        .to_string();
    assert!(e.contains("set") && e.contains("mask value 0.5"), "{e}");

    let mut ds = dataset();
    ds.masks[3] = 0.0; // channel 1 of pixel 0 hidden but channel 0 observed
    assert!(write_corrupted_dir(&out, &ds, &record())
        .unwrap_err()
        .to_string()
        .contains("differs between the channels"));

    let mut ds = dataset();
    ds.measurements[0] = f32::NAN; // at an observed pixel
    let e = write_corrupted_dir(&out, &ds, &record()).unwrap_err();
    assert!(
        matches!(e, HostError::NonFinite { .. }) && e.to_string().contains("measurements.npy"),
        "{e}"
    );

    let mut rec = record();
    rec.count = 3;
    assert!(write_corrupted_dir(&out, &dataset(), &rec)
        .unwrap_err()
        .to_string()
        .contains("count = 3"));
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());

    fs::write(dir.path("plain"), b"x").unwrap();
    let e = write_corrupted_dir(&dir.path("plain").join("set"), &dataset(), &record()).unwrap_err();
    assert!(
        matches!(e, HostError::Unwritable { .. }) && e.to_string().contains("is a file"),
        "{e}"
    );
    // An existing dataset is never overwritten.
    write_corrupted_dir(&out, &dataset(), &record()).unwrap();
    let e = write_corrupted_dir(&out, &dataset(), &record()).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(dir.entries(), vec!["plain", "set"]);
}

#[test]
fn bad_directories_are_named() {
    let dir = Scratch::new("cdir-read");
    let out = dir.path("set");
    write_corrupted_dir(&out, &dataset(), &record()).unwrap();
    // Masks of the wrong size name both files.
    fs::write(
        out.join("masks.npy"),
        npy_bytes("|u1", &[2, 1, 2, 1], &[1; 4]),
    )
    .unwrap();
    let e = load_corrupted_dir(&out).unwrap_err();
    assert!(matches!(e, HostError::MaskShape { .. }), "{e}");
    let m = e.to_string();
    assert!(
        m.contains("masks.npy is 2 x 1 x 2 x 1") && m.contains("measurements.npy is 2 x 1 x 3 x 2"),
        "{m}"
    );
    // Garbage in the file at a missing pixel never reaches the dataset.
    fs::write(
        out.join("masks.npy"),
        npy_bytes("|u1", &[2, 1, 3, 1], &[1, 0, 1, 0, 1, 0]),
    )
    .unwrap();
    fs::write(
        out.join("measurements.npy"),
        npy_bytes(
            "|u1",
            &[2, 1, 3, 2],
            &[10, 11, 99, 98, 30, 31, 97, 96, 200, 201, 95, 94],
        ),
    )
    .unwrap();
    let ds = load_corrupted_dir(&out).unwrap();
    assert_eq!(
        ds.measurements,
        vec![
            u(10),
            0.0,
            u(30),
            u(11),
            0.0,
            u(31),
            0.0,
            u(200),
            0.0,
            0.0,
            u(201),
            0.0
        ]
    );
    // A record whose count disagrees with the data.
    let text = fs::read_to_string(out.join("corruption.json"))
        .unwrap()
        .replace("\"count\": 2", "\"count\": 5");
    fs::write(out.join("corruption.json"), text).unwrap();
    let e = load_corrupted_dir(&out).unwrap_err().to_string();
    assert!(
        e.contains("corruption.json") && e.contains("count = 5"),
        "{e}"
    );
    fs::write(out.join("corruption.json"), "{\"kind\": \"random\"}").unwrap();
    let e = load_corrupted_dir(&out).unwrap_err().to_string();
    assert!(
        e.contains("corruption.json") && e.contains("missing field"),
        "{e}"
    );
    fs::remove_file(out.join("masks.npy")).unwrap();
    write_record(&out);
    let e = load_corrupted_dir(&out).unwrap_err().to_string();
    assert!(e.contains("masks.npy") && e.contains("cannot read"), "{e}");
}

fn write_record(dir: &std::path::Path) {
    fs::write(
        dir.join("corruption.json"),
        serde_json::to_string(&record()).unwrap(),
    )
    .unwrap();
}

#[test]
fn load_picks_the_reader_by_what_the_path_is() {
    let dir = Scratch::new("cdir-load");
    let out = dir.path("set");
    write_corrupted_dir(&out, &dataset(), &record()).unwrap();
    let ds = CorruptedDataset::load(&out).unwrap();
    assert_eq!(ds.meta.as_ref().unwrap()["seed"], 42);
    let npy = dir.path("clean.npy");
    fs::write(&npy, npy_bytes("|u1", &[1, 1, 1], &[255])).unwrap();
    let ds = CorruptedDataset::load(&npy).unwrap();
    assert_eq!(
        (ds.measurements.clone(), ds.masks.clone()),
        (vec![1.0], vec![1.0])
    );
    // Anything else is read as IDX, and the error says so.
    let other = dir.path("other.bin");
    fs::write(&other, b"hello").unwrap();
    let e = CorruptedDataset::load(&other).unwrap_err().to_string();
    assert!(e.contains("other.bin") && e.contains("IDX"), "{e}");
    // A directory without corruption.json is a PNG folder.
    let e = CorruptedDataset::load(&dir.0).unwrap_err().to_string();
    assert!(e.contains("no NAME.png"), "{e}");
}
