//! The quantized model blob and its parser: one little-endian byte string that firmware parses
//! in place from flash (`&'static [u8]`, or any `&[u8]`) with no allocator. The host writes it
//! with [`super::blob_writer`].
//!
//! Layout (offsets from the blob's first byte; every integer u32 LE, floats f32 LE):
//! ```text
//!  0  magic "AMBQINT8"          8  version (1)            12  CRC-32 of bytes [16, total_len)
//! 16  total_len                20  tensor_count
//! 24  img_channels  28 img_resolution  32 ch  36 blocks  40 groups  44 levels  48 mult[4]
//! 64  sigma_data (f32)         68  sigma (f32): the noise level the graph was folded for
//! 72  reserved (0)             76  reserved (0)
//! 80  tensor table: tensor_count entries of 40 bytes:
//!       name_offset, name_len, dtype (1 i8, 2 i32, 3 f32), rank (1..=4), dims[4] (0 past
//!       rank), data_offset, byte_len
//!     then the names (UTF-8, unaligned), then each tensor's data at a 16-byte aligned offset.
//! ```
//! Everything after the CRC field is covered by it. The parser checks the whole table once
//! (bounds, alignment, shapes against byte lengths with overflow-checked arithmetic, names,
//! duplicates), so later look-ups cannot fail except on a dtype mismatch or a base address not
//! aligned for the typed view; it never panics on any input. Typed views are zero-copy
//! (`bytemuck`), which needs the blob itself placed at a 4-byte (16 for SIMD) aligned address
//! and a little-endian target (x86-64, Cortex-M); trailing bytes past `total_len` (flash
//! padding) are ignored.

use super::crc32::crc32;
use core::fmt;

/// The blob's first eight bytes.
pub const MAGIC: [u8; 8] = *b"AMBQINT8";
/// The format version this parser reads and the writer writes.
pub const VERSION: u32 = 1;
/// Bytes before the tensor table.
pub const HEADER_LEN: usize = 80;
/// Bytes per tensor table entry.
pub const ENTRY_LEN: usize = 40;
/// Alignment of every tensor's data relative to the blob's start.
pub const ALIGN: usize = 16;
/// The longest tensor name.
pub const MAX_NAME: usize = 128;
/// The most tensors one blob may hold.
pub const MAX_TENSORS: usize = 4096;

/// What is wrong with a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobError {
    /// Fewer bytes than the header or `total_len` says.
    Truncated {
        needed: usize,
        got: usize,
    },
    BadMagic,
    UnsupportedVersion(u32),
    BadCrc {
        stored: u32,
        computed: u32,
    },
    /// A header field (total length, reserved words, tensor count) is inconsistent.
    BadHeader(&'static str),
    /// The network configuration is out of range.
    BadConfig(&'static str),
    /// Tensor `index` has an unknown dtype, a bad rank, or dims that overflow or disagree with
    /// its byte length.
    BadShape {
        index: usize,
    },
    /// Tensor `index`'s data or name lies outside the blob or overlaps the header or table.
    OutOfBounds {
        index: usize,
    },
    /// Tensor `index`'s data offset is not a multiple of [`ALIGN`].
    Misaligned {
        index: usize,
    },
    /// Tensor `index`'s name is empty, too long or not UTF-8, or repeats an earlier name.
    BadName {
        index: usize,
    },
    /// No tensor has this name (for [`Blob::find`]).
    NotFound,
    /// A typed view of the wrong dtype was asked for.
    WrongDtype,
    /// The blob's address in memory is not aligned for a typed view, or the target is
    /// big-endian.
    UnalignedView,
    /// The writer's output buffer is too short, or a tensor's data disagrees with its shape.
    BadWrite(&'static str),
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobError::Truncated { needed, got } => {
                write!(f, "blob truncated: needs {needed} bytes, has {got}")
            }
            BlobError::BadMagic => write!(f, "not an ambient int8 blob (bad magic)"),
            BlobError::UnsupportedVersion(v) => write!(f, "unsupported blob version {v}"),
            BlobError::BadCrc { stored, computed } => write!(
                f,
                "blob CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            BlobError::BadHeader(w) => write!(f, "bad blob header: {w}"),
            BlobError::BadConfig(w) => write!(f, "bad blob config: {w}"),
            BlobError::BadShape { index } => write!(f, "tensor {index}: bad dtype or shape"),
            BlobError::OutOfBounds { index } => write!(f, "tensor {index}: out of bounds"),
            BlobError::Misaligned { index } => write!(f, "tensor {index}: misaligned data"),
            BlobError::BadName { index } => write!(f, "tensor {index}: bad or duplicate name"),
            BlobError::NotFound => write!(f, "no tensor of that name"),
            BlobError::WrongDtype => write!(f, "tensor has another dtype"),
            BlobError::UnalignedView => {
                write!(
                    f,
                    "blob address not aligned for a typed view (or big-endian target)"
                )
            }
            BlobError::BadWrite(w) => write!(f, "cannot write blob: {w}"),
        }
    }
}

impl core::error::Error for BlobError {}

/// Element types a blob stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    I8,
    I32,
    F32,
}

impl DType {
    pub(crate) fn code(self) -> u32 {
        match self {
            DType::I8 => 1,
            DType::I32 => 2,
            DType::F32 => 3,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(DType::I8),
            2 => Some(DType::I32),
            3 => Some(DType::F32),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I32 | DType::F32 => 4,
        }
    }
}

/// The network configuration a blob was quantized from (docs/ambient-unet-spec.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlobConfig {
    pub img_channels: u32,
    pub img_resolution: u32,
    pub ch: u32,
    pub blocks: u32,
    pub groups: u32,
    /// Number of levels, `len(mult)`, 1..=4.
    pub levels: u32,
    /// Channel multipliers; entries past `levels` are 0.
    pub mult: [u32; 4],
    pub sigma_data: f32,
    /// The noise level the graph's constants (embedding, c_in, c_skip, c_out) were folded for.
    pub sigma: f32,
}

impl BlobConfig {
    /// Range checks: every size positive and modest, groups dividing every width, the
    /// resolution divisible by `2^(levels - 1)`, sigmas positive and finite.
    pub fn validate(&self) -> Result<(), BlobError> {
        let bad = BlobError::BadConfig;
        if !(1..=16).contains(&self.img_channels) {
            return Err(bad("img_channels must be in 1..=16"));
        }
        if !(1..=4096).contains(&self.img_resolution) {
            return Err(bad("img_resolution must be in 1..=4096"));
        }
        if !(1..=4).contains(&self.levels) {
            return Err(bad("levels must be in 1..=4"));
        }
        if self.img_resolution.trailing_zeros() < self.levels - 1 {
            return Err(bad("img_resolution must be divisible by 2^(levels - 1)"));
        }
        if !(1..=4096).contains(&self.ch) || !(1..=16).contains(&self.blocks) {
            return Err(bad("ch must be in 1..=4096 and blocks in 1..=16"));
        }
        if self.ch.checked_rem(self.groups) != Some(0) {
            return Err(bad("groups must divide ch"));
        }
        for (l, &m) in self.mult.iter().enumerate() {
            let used = (l as u32) < self.levels;
            if used && !(1..=16).contains(&m) || !used && m != 0 {
                return Err(bad("mult must be in 1..=16 for each level and 0 past them"));
            }
        }
        for s in [self.sigma_data, self.sigma] {
            if !s.is_finite() || s <= 0.0 {
                return Err(bad("sigmas must be positive and finite"));
            }
        }
        Ok(())
    }
}

/// One tensor of a parsed blob: its name, dtype, shape and bytes, borrowed from the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorRef<'a> {
    pub name: &'a str,
    pub dtype: DType,
    rank: usize,
    dims: [u32; 4],
    pub bytes: &'a [u8],
}

impl<'a> TensorRef<'a> {
    /// The dims, `rank` of them.
    pub fn shape(&self) -> &[u32] {
        &self.dims[..self.rank]
    }

    /// Element count.
    pub fn len(&self) -> usize {
        self.bytes.len() / self.dtype.size()
    }

    /// Whether the tensor has no elements (never, for a parsed blob: every dim is positive).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The data as int8.
    pub fn as_i8(&self) -> Result<&'a [i8], BlobError> {
        if self.dtype != DType::I8 {
            return Err(BlobError::WrongDtype);
        }
        Ok(bytemuck::cast_slice(self.bytes))
    }

    /// The data as int32 (zero-copy: the blob must sit at a 4-byte aligned address).
    pub fn as_i32(&self) -> Result<&'a [i32], BlobError> {
        if self.dtype != DType::I32 {
            return Err(BlobError::WrongDtype);
        }
        typed(self.bytes)
    }

    /// The data as f32 (zero-copy: the blob must sit at a 4-byte aligned address).
    pub fn as_f32(&self) -> Result<&'a [f32], BlobError> {
        if self.dtype != DType::F32 {
            return Err(BlobError::WrongDtype);
        }
        typed(self.bytes)
    }
}

fn typed<T: bytemuck::Pod>(bytes: &[u8]) -> Result<&[T], BlobError> {
    if cfg!(target_endian = "big") {
        return Err(BlobError::UnalignedView);
    }
    bytemuck::try_cast_slice(bytes).map_err(|_| BlobError::UnalignedView)
}

#[inline]
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(w)
}

/// A validated blob.
#[derive(Debug, Clone, Copy)]
pub struct Blob<'a> {
    bytes: &'a [u8],
    pub config: BlobConfig,
    count: usize,
}

impl<'a> Blob<'a> {
    /// Parses and validates `bytes` (see the module docs for what is checked).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BlobError> {
        if bytes.len() < HEADER_LEN {
            return Err(BlobError::Truncated {
                needed: HEADER_LEN,
                got: bytes.len(),
            });
        }
        if bytes[..8] != MAGIC {
            return Err(BlobError::BadMagic);
        }
        let version = read_u32(bytes, 8);
        if version != VERSION {
            return Err(BlobError::UnsupportedVersion(version));
        }
        let total = read_u32(bytes, 16) as usize;
        if total < HEADER_LEN {
            return Err(BlobError::BadHeader("total_len shorter than the header"));
        }
        if total > bytes.len() {
            return Err(BlobError::Truncated {
                needed: total,
                got: bytes.len(),
            });
        }
        let bytes = &bytes[..total];
        let stored = read_u32(bytes, 12);
        let computed = crc32(&bytes[16..]);
        if stored != computed {
            return Err(BlobError::BadCrc { stored, computed });
        }
        let config = BlobConfig {
            img_channels: read_u32(bytes, 24),
            img_resolution: read_u32(bytes, 28),
            ch: read_u32(bytes, 32),
            blocks: read_u32(bytes, 36),
            groups: read_u32(bytes, 40),
            levels: read_u32(bytes, 44),
            mult: [
                read_u32(bytes, 48),
                read_u32(bytes, 52),
                read_u32(bytes, 56),
                read_u32(bytes, 60),
            ],
            sigma_data: f32::from_bits(read_u32(bytes, 64)),
            sigma: f32::from_bits(read_u32(bytes, 68)),
        };
        config.validate()?;
        if read_u32(bytes, 72) != 0 || read_u32(bytes, 76) != 0 {
            return Err(BlobError::BadHeader("reserved words must be 0"));
        }
        let count = read_u32(bytes, 20) as usize;
        if count > MAX_TENSORS {
            return Err(BlobError::BadHeader("too many tensors"));
        }
        if HEADER_LEN + count * ENTRY_LEN > total {
            return Err(BlobError::BadHeader("tensor table exceeds the blob"));
        }
        let blob = Blob {
            bytes,
            config,
            count,
        };
        for i in 0..count {
            let t = blob.entry(i)?;
            for j in 0..i {
                if blob.entry(j)?.name == t.name {
                    return Err(BlobError::BadName { index: i });
                }
            }
        }
        Ok(blob)
    }

    /// Reads and checks table entry `index` (< count).
    fn entry(&self, index: usize) -> Result<TensorRef<'a>, BlobError> {
        let bytes = self.bytes;
        let e = HEADER_LEN + index * ENTRY_LEN;
        let field = |k: usize| read_u32(bytes, e + 4 * k) as usize;
        let table_end = HEADER_LEN + self.count * ENTRY_LEN;
        let within = |offset: usize, len: usize| {
            offset >= table_end
                && offset
                    .checked_add(len)
                    .is_some_and(|end| end <= bytes.len())
        };

        let (name_offset, name_len) = (field(0), field(1));
        if name_len == 0 || name_len > MAX_NAME {
            return Err(BlobError::BadName { index });
        }
        if !within(name_offset, name_len) {
            return Err(BlobError::OutOfBounds { index });
        }
        let name = core::str::from_utf8(&bytes[name_offset..name_offset + name_len])
            .map_err(|_| BlobError::BadName { index })?;

        let bad_shape = BlobError::BadShape { index };
        let dtype = DType::from_code(field(2) as u32).ok_or(bad_shape)?;
        let rank = field(3);
        if !(1..=4).contains(&rank) {
            return Err(bad_shape);
        }
        let mut dims = [0u32; 4];
        let mut elements: usize = 1;
        for (k, d) in dims.iter_mut().enumerate() {
            *d = field(4 + k) as u32;
            if k < rank {
                if *d == 0 {
                    return Err(bad_shape);
                }
                elements = elements.checked_mul(*d as usize).ok_or(bad_shape)?;
            } else if *d != 0 {
                return Err(bad_shape);
            }
        }
        let (data_offset, byte_len) = (field(8), field(9));
        if elements.checked_mul(dtype.size()) != Some(byte_len) {
            return Err(bad_shape);
        }
        if data_offset % ALIGN != 0 {
            return Err(BlobError::Misaligned { index });
        }
        if !within(data_offset, byte_len) {
            return Err(BlobError::OutOfBounds { index });
        }
        Ok(TensorRef {
            name,
            dtype,
            rank,
            dims,
            bytes: &bytes[data_offset..data_offset + byte_len],
        })
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the blob holds no tensors.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Tensor `index` in table order.
    pub fn tensor(&self, index: usize) -> Result<TensorRef<'a>, BlobError> {
        if index >= self.count {
            return Err(BlobError::NotFound);
        }
        self.entry(index)
    }

    /// The tensor called `name`.
    pub fn find(&self, name: &str) -> Result<TensorRef<'a>, BlobError> {
        for i in 0..self.count {
            let t = self.entry(i)?;
            if t.name == name {
                return Ok(t);
            }
        }
        Err(BlobError::NotFound)
    }
}
