//! A directory of compiled PTX, one file per (kernel source, compile options, device
//! architecture), so that NVRTC runs once per machine and architecture rather than at every
//! start, and a machine with the driver but no NVRTC can run PTX compiled elsewhere (copy the
//! directory). The NVRTC version is not part of the key: any NVRTC compiles the same source to
//! equivalent PTX, and the driver JIT-compiles whichever it gets. Files are named `NAME-compute_XY-HASH.ptx`, HASH being the 64-bit FNV-1a of
//! everything that determines the PTX; they are written to a temporary name and renamed, so a
//! reader never sees half a file.
//!
//! The directory is `AMBIENT_PTX_CACHE` if set, else `$XDG_CACHE_HOME/ambient/ptx`, else
//! `$HOME/.cache/ambient/ptx`, else `ambient-ptx` under the system temporary directory.

use crate::device::ComputeCapability;
use crate::error::{CudaHostError, Result};
use std::path::{Path, PathBuf};

/// A PTX cache directory.
#[derive(Debug, Clone)]
pub struct PtxCache {
    dir: PathBuf,
}

/// What determines one compiled PTX text.
#[derive(Debug, Clone, Copy)]
pub struct PtxKey<'a> {
    /// Program name, used in the file name.
    pub name: &'a str,
    pub source: &'a str,
    pub options: &'a [&'a str],
    pub cc: ComputeCapability,
}

impl PtxKey<'_> {
    /// The cache's file name for this key.
    pub fn file_name(&self) -> String {
        let mut h = Fnv1a::new();
        h.write(self.source.as_bytes());
        h.write(&[0]);
        for o in self.options {
            h.write(o.as_bytes());
            h.write(&[0]);
        }
        h.write(&self.cc.major.to_le_bytes());
        h.write(&self.cc.minor.to_le_bytes());
        format!(
            "{}-compute_{}{}-{:016x}.ptx",
            self.name, self.cc.major, self.cc.minor, h.0
        )
    }
}

impl PtxCache {
    /// The cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> PtxCache {
        PtxCache { dir: dir.into() }
    }

    /// The cache at the default location (see the module docs).
    pub fn default_location() -> PtxCache {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let dir = if let Some(d) = var("AMBIENT_PTX_CACHE") {
            PathBuf::from(d)
        } else if let Some(d) = var("XDG_CACHE_HOME") {
            PathBuf::from(d).join("ambient/ptx")
        } else if let Some(d) = var("HOME") {
            PathBuf::from(d).join(".cache/ambient/ptx")
        } else {
            std::env::temp_dir().join("ambient-ptx")
        };
        PtxCache { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cached PTX of `key`, if there is one.
    pub fn lookup(&self, key: &PtxKey) -> Result<Option<String>> {
        let path = self.dir.join(key.file_name());
        match std::fs::read_to_string(&path) {
            Ok(ptx) => Ok(Some(ptx)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CudaHostError::PtxCache { path, source }),
        }
    }

    /// Stores `ptx` for `key` (temporary file, then rename).
    pub fn store(&self, key: &PtxKey, ptx: &str) -> Result<()> {
        let path = self.dir.join(key.file_name());
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CudaHostError::PtxCache { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", key.file_name(), std::process::id()));
        std::fs::write(&tmp, ptx).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// The cached PTX of `key`, or `compile()`'s, stored for next time.
    pub fn get_or_compile(
        &self,
        key: &PtxKey,
        compile: impl FnOnce() -> Result<String>,
    ) -> Result<String> {
        if let Some(ptx) = self.lookup(key)? {
            return Ok(ptx);
        }
        let ptx = compile()?;
        self.store(key, &ptx)?;
        Ok(ptx)
    }
}

/// 64-bit FNV-1a: a stable hash (std's `DefaultHasher` may change between Rust releases).
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(source: &'a str, cc: (u32, u32)) -> PtxKey<'a> {
        PtxKey {
            name: "k",
            source,
            options: &["--fmad=false"],
            cc: ComputeCapability {
                major: cc.0,
                minor: cc.1,
            },
        }
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // From the FNV reference test suite (Noll): "" and "a" and "foobar".
        for (input, want) in [
            ("", 0xcbf2_9ce4_8422_2325u64),
            ("a", 0xaf63_dc4c_8601_ec8c),
            ("foobar", 0x8594_4171_f739_67e8),
        ] {
            let mut h = Fnv1a::new();
            h.write(input.as_bytes());
            assert_eq!(h.0, want, "FNV-1a of {input:?}");
        }
    }

    #[test]
    fn file_names_separate_sources_and_architectures() {
        let a = key("kernel A", (8, 0)).file_name();
        assert!(a.starts_with("k-compute_80-") && a.ends_with(".ptx"), "{a}");
        assert_ne!(a, key("kernel B", (8, 0)).file_name());
        assert_ne!(a, key("kernel A", (9, 0)).file_name());
        let mut other_options = key("kernel A", (8, 0));
        other_options.options = &["--fmad=true"];
        assert_ne!(a, other_options.file_name());
        assert_eq!(a, key("kernel A", (8, 0)).file_name());
    }

    #[test]
    fn compiles_once_then_reads_the_cache() {
        let dir = std::env::temp_dir().join(format!("ambient-ptx-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = PtxCache::new(&dir);
        let k = key("source", (8, 6));
        assert_eq!(cache.lookup(&k).unwrap(), None);
        let mut calls = 0;
        let mut compile = || {
            calls += 1;
            Ok(".version 8.0 // ptx".to_string())
        };
        assert_eq!(
            cache.get_or_compile(&k, &mut compile).unwrap(),
            ".version 8.0 // ptx"
        );
        assert_eq!(
            cache.get_or_compile(&k, &mut compile).unwrap(),
            ".version 8.0 // ptx"
        );
        assert_eq!(calls, 1, "the second request must come from the cache");
        // A failing compile is passed through and stores nothing.
        let k2 = key("broken", (8, 6));
        let err = cache.get_or_compile(&k2, || {
            Err(CudaHostError::Nvrtc {
                call: "nvrtcCompileProgram",
                status: 6,
                log: "error".into(),
            })
        });
        assert!(matches!(err, Err(CudaHostError::Nvrtc { status: 6, .. })));
        assert_eq!(cache.lookup(&k2).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
