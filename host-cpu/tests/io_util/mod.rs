//! Helpers shared by the I/O tests: scratch directories that clean up after themselves, and
//! hand-built files (npy, safetensors) made without the code under test.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh empty directory under the system temp dir, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!(
            "ambient-test-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Names in the directory, sorted (hidden temporaries included).
    pub fn entries(&self) -> Vec<String> {
        entries(&self.0)
    }
}

pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A version-1 `.npy` file written by hand from the format description: magic, version,
/// header length, the dict padded with spaces to a multiple of 64 bytes and a newline, data.
pub fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    let pad = (64 - (10 + dict.len() + 1) % 64) % 64;
    let text = format!("{dict}{}\n", " ".repeat(pad));
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(data);
    out
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A safetensors file built by hand: 8-byte little-endian header length, the JSON header
/// (tensors with dtype, shape and data offsets, plus `__metadata__`), then the data.
pub fn safetensors_bytes(
    metadata: &[(&str, String)],
    tensors: &[(String, &str, Vec<usize>, Vec<u8>)],
) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let meta: serde_json::Map<String, serde_json::Value> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
        .collect();
    header.insert("__metadata__".into(), meta.into());
    let mut offset = 0usize;
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes.len()]}),
        );
        offset += bytes.len();
        data.extend_from_slice(bytes);
    }
    let mut text = serde_json::to_string(&header).unwrap();
    let pad = (8 - text.len() % 8) % 8;
    text.push_str(&" ".repeat(pad));
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&data);
    out
}

/// Parses a safetensors header by hand: (header JSON, offset of the data section).
pub fn safetensors_header(bytes: &[u8]) -> (serde_json::Value, usize) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (serde_json::from_slice(&bytes[8..8 + n]).unwrap(), 8 + n)
}

/// The f32 values of tensor `name` read by hand from a safetensors file.
pub fn safetensors_f32(bytes: &[u8], name: &str) -> (Vec<usize>, Vec<f32>) {
    let (h, start) = safetensors_header(bytes);
    let t = &h[name];
    assert_eq!(t["dtype"], "F32");
    let shape: Vec<usize> = serde_json::from_value(t["shape"].clone()).unwrap();
    let a = t["data_offsets"][0].as_u64().unwrap() as usize + start;
    let b = t["data_offsets"][1].as_u64().unwrap() as usize + start;
    let v = bytes[a..b]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (shape, v)
}
