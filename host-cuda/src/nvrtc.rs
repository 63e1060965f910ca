//! Run-time compilation of CUDA C to PTX with NVRTC, loaded dynamically (libloading), so that
//! nothing links against the CUDA toolkit: a machine with only the driver gets a typed
//! [`CudaHostError::NvrtcNotFound`] at the point where a kernel is first needed.
//!
//! The library is taken from `AMBIENT_NVRTC` (a path) if set, else the first of `libnvrtc.so`,
//! `libnvrtc.so.13`, `libnvrtc.so.12`, `libnvrtc.so.11.2` found on the loader's path, in
//! `$CUDA_PATH/lib64` or in `/usr/local/cuda/lib64`.
#![allow(unsafe_code)] // FFI into libnvrtc; each call's contract is stated where it is made.

use crate::device::ComputeCapability;
use crate::error::{CudaHostError, Result};
use std::ffi::{c_char, c_int, CStr, CString};
use std::path::PathBuf;

type Program = *mut std::ffi::c_void;
type Status = c_int;
const NVRTC_SUCCESS: Status = 0;

type VersionFn = unsafe extern "C" fn(*mut c_int, *mut c_int) -> Status;
type CreateFn = unsafe extern "C" fn(
    *mut Program,
    *const c_char,
    *const c_char,
    c_int,
    *const *const c_char,
    *const *const c_char,
) -> Status;
type CompileFn = unsafe extern "C" fn(Program, c_int, *const *const c_char) -> Status;
type SizeFn = unsafe extern "C" fn(Program, *mut usize) -> Status;
type TextFn = unsafe extern "C" fn(Program, *mut c_char) -> Status;
type DestroyFn = unsafe extern "C" fn(*mut Program) -> Status;
type NumArchsFn = unsafe extern "C" fn(*mut c_int) -> Status;
type ArchsFn = unsafe extern "C" fn(*mut c_int) -> Status;

/// Options every kernel is compiled with: no contraction of a * b + c into a fused multiply-add
/// (the kernels also use the _rn intrinsics, which are never contracted), IEEE division and
/// square root, no flushing of subnormals: results then round like the CPU host's.
pub const COMPILE_OPTIONS: &[&str] = &[
    "--fmad=false",
    "--prec-div=true",
    "--prec-sqrt=true",
    "--ftz=false",
];

/// A loaded libnvrtc.
pub struct Nvrtc {
    lib: libloading::Library,
    /// Where it was loaded from (a name or a path).
    pub library: String,
    /// NVRTC's (major, minor) version.
    pub version: (i32, i32),
}

impl Nvrtc {
    /// Loads libnvrtc (see the module docs for where it looks).
    pub fn load() -> Result<Nvrtc> {
        let mut candidates: Vec<String> = Vec::new();
        if let Some(p) = std::env::var_os("AMBIENT_NVRTC") {
            candidates.push(PathBuf::from(p).display().to_string());
        }
        let names = [
            "libnvrtc.so",
            "libnvrtc.so.13",
            "libnvrtc.so.12",
            "libnvrtc.so.11.2",
        ];
        candidates.extend(names.iter().map(|n| n.to_string()));
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(root) = std::env::var_os("CUDA_PATH") {
            dirs.push(PathBuf::from(root).join("lib64"));
        }
        dirs.push(PathBuf::from("/usr/local/cuda/lib64"));
        for d in &dirs {
            candidates.extend(names.iter().map(|n| d.join(n).display().to_string()));
        }
        for c in &candidates {
            // SAFETY: loading libnvrtc runs its initialisers, which have no preconditions.
            if let Ok(lib) = unsafe { libloading::Library::new(c) } {
                let mut nvrtc = Nvrtc {
                    lib,
                    library: c.clone(),
                    version: (0, 0),
                };
                nvrtc.version = nvrtc.query_version()?;
                return Ok(nvrtc);
            }
        }
        Err(CudaHostError::NvrtcNotFound {
            tried: candidates.join(", "),
        })
    }

    fn symbol<T: Copy>(&self, name: &str) -> Result<T> {
        // SAFETY: every T this module asks for is the C signature NVRTC documents for `name`.
        unsafe { self.lib.get::<T>(name.as_bytes()) }
            .map(|s| *s)
            .map_err(|_| CudaHostError::NvrtcSymbol {
                library: self.library.clone(),
                symbol: name.to_string(),
            })
    }

    fn query_version(&self) -> Result<(i32, i32)> {
        let version: VersionFn = self.symbol("nvrtcVersion")?;
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two valid out-pointers.
        let status = unsafe { version(&mut major, &mut minor) };
        check("nvrtcVersion", status, String::new())?;
        Ok((major, minor))
    }

    /// The architectures this NVRTC compiles for, as compute capabilities in increasing order
    /// (`nvrtcGetSupportedArchs`, NVRTC 11.2 and later).
    pub fn supported_archs(&self) -> Result<Vec<ComputeCapability>> {
        let num: NumArchsFn = self.symbol("nvrtcGetNumSupportedArchs")?;
        let get: ArchsFn = self.symbol("nvrtcGetSupportedArchs")?;
        let mut n: c_int = 0;
        // SAFETY: one valid out-pointer.
        check(
            "nvrtcGetNumSupportedArchs",
            unsafe { num(&mut n) },
            String::new(),
        )?;
        let mut archs = vec![0 as c_int; n.max(0) as usize];
        // SAFETY: `archs` holds the `n` entries NVRTC writes.
        check(
            "nvrtcGetSupportedArchs",
            unsafe { get(archs.as_mut_ptr()) },
            String::new(),
        )?;
        let mut ccs: Vec<ComputeCapability> = archs
            .into_iter()
            .filter(|&a| a > 0)
            .map(|a| ComputeCapability {
                major: a as u32 / 10,
                minor: a as u32 % 10,
            })
            .collect();
        ccs.sort_by_key(|c| (c.major, c.minor));
        Ok(ccs)
    }

    /// Compiles CUDA C `source` (program name `name`, for messages) to PTX for the device
    /// `cc`: for its virtual architecture `compute_XY` when this NVRTC supports it, else for
    /// the newest one it supports below (see [`ptx_arch_for`]), with [`COMPILE_OPTIONS`]. A
    /// rejected program gives [`CudaHostError::Nvrtc`] carrying the compiler's log.
    pub fn compile(&self, source: &str, name: &str, cc: ComputeCapability) -> Result<String> {
        let cc =
            ptx_arch_for(cc, &self.supported_archs()?).ok_or_else(|| CudaHostError::Nvrtc {
                call: "nvrtcGetSupportedArchs",
                status: -1,
                log: format!(
                    "this NVRTC ({}.{}) compiles for no architecture at or below compute_{}{}",
                    self.version.0, self.version.1, cc.major, cc.minor
                ),
            })?;
        let create: CreateFn = self.symbol("nvrtcCreateProgram")?;
        let compile: CompileFn = self.symbol("nvrtcCompileProgram")?;
        let log_size: SizeFn = self.symbol("nvrtcGetProgramLogSize")?;
        let log: TextFn = self.symbol("nvrtcGetProgramLog")?;
        let ptx_size: SizeFn = self.symbol("nvrtcGetPTXSize")?;
        let ptx: TextFn = self.symbol("nvrtcGetPTX")?;
        let destroy: DestroyFn = self.symbol("nvrtcDestroyProgram")?;

        let c_source = c_string(source)?;
        let c_name = c_string(name)?;
        let mut options: Vec<CString> = vec![c_string(&cc.nvrtc_arch_option())?];
        for o in COMPILE_OPTIONS {
            options.push(c_string(o)?);
        }
        let option_ptrs: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();

        let mut program: Program = std::ptr::null_mut();
        // SAFETY: NUL-terminated source and name; no headers (count 0, null arrays).
        let status = unsafe {
            create(
                &mut program,
                c_source.as_ptr(),
                c_name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        check("nvrtcCreateProgram", status, String::new())?;
        let read_text = |size_fn: SizeFn, text_fn: TextFn| -> std::result::Result<String, Status> {
            let mut size = 0usize;
            // SAFETY: `program` is live; `buf` has the size NVRTC asked for, NUL included.
            let status = unsafe { size_fn(program, &mut size) };
            if status != NVRTC_SUCCESS {
                return Err(status);
            }
            let mut buf = vec![0 as c_char; size.max(1)];
            let status = unsafe { text_fn(program, buf.as_mut_ptr()) };
            if status != NVRTC_SUCCESS {
                return Err(status);
            }
            // SAFETY: NVRTC NUL-terminates the text within `size` bytes.
            Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned())
        };
        // SAFETY: `program` is live and `option_ptrs` points at NUL-terminated options.
        let status = unsafe { compile(program, option_ptrs.len() as c_int, option_ptrs.as_ptr()) };
        let result = if status != NVRTC_SUCCESS {
            let log = read_text(log_size, log).unwrap_or_default();
            check("nvrtcCompileProgram", status, log).map(|_| String::new())
        } else {
            read_text(ptx_size, ptx).map_err(|status| CudaHostError::Nvrtc {
                call: "nvrtcGetPTX",
                status,
                log: String::new(),
            })
        };
        // SAFETY: `program` was created above and is destroyed once.
        unsafe { destroy(&mut program) };
        result
    }
}

/// The architecture to compile for a device of capability `device`, given what NVRTC
/// `supported`: the device's own, else the newest supported one below it (PTX for an older
/// virtual architecture runs on newer devices: the driver JIT-compiles it), else none.
pub fn ptx_arch_for(
    device: ComputeCapability,
    supported: &[ComputeCapability],
) -> Option<ComputeCapability> {
    supported
        .iter()
        .copied()
        .filter(|s| (s.major, s.minor) <= (device.major, device.minor))
        .max_by_key(|s| (s.major, s.minor))
}

fn check(call: &'static str, status: Status, log: String) -> Result<()> {
    if status == NVRTC_SUCCESS {
        Ok(())
    } else {
        Err(CudaHostError::Nvrtc { call, status, log })
    }
}

fn c_string(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| CudaHostError::Nvrtc {
        call: "nvrtcCreateProgram",
        status: -1,
        log: "source or option contains a NUL byte".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(major: u32, minor: u32) -> ComputeCapability {
        ComputeCapability { major, minor }
    }

    #[test]
    fn ptx_arch_is_the_device_s_or_the_newest_supported_below_it() {
        let supported = [cc(5, 0), cc(7, 0), cc(8, 0), cc(8, 6), cc(9, 0)];
        assert_eq!(ptx_arch_for(cc(9, 0), &supported), Some(cc(9, 0)));
        assert_eq!(ptx_arch_for(cc(8, 9), &supported), Some(cc(8, 6)));
        // A device newer than this NVRTC knows (e.g. 12.0 under NVRTC 12.0).
        assert_eq!(ptx_arch_for(cc(12, 0), &supported), Some(cc(9, 0)));
        // Older than anything supported: no PTX this NVRTC makes can run there.
        assert_eq!(ptx_arch_for(cc(3, 5), &supported), None);
        assert_eq!(ptx_arch_for(cc(9, 0), &[]), None);
    }
}
