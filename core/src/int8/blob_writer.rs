//! Writes the model blob that [`super::blob`] parses, into a buffer the caller provides (the
//! host sizes it with [`blob_len`]): header, tensor table, names, then each tensor's data at a
//! 16-byte aligned offset, and the CRC last.

use super::blob::{
    BlobConfig, BlobError, DType, ALIGN, ENTRY_LEN, HEADER_LEN, MAGIC, MAX_NAME, MAX_TENSORS,
    VERSION,
};
use super::crc32::crc32;

/// One tensor for [`write_blob`]: `data` holds the elements little-endian.
#[derive(Debug, Clone, Copy)]
pub struct TensorSpec<'a> {
    pub name: &'a str,
    pub dtype: DType,
    pub shape: &'a [u32],
    pub data: &'a [u8],
}

impl<'a> TensorSpec<'a> {
    pub fn i8(name: &'a str, shape: &'a [u32], data: &'a [i8]) -> Self {
        TensorSpec {
            name,
            dtype: DType::I8,
            shape,
            data: bytemuck::cast_slice(data),
        }
    }

    /// Native byte order, which [`write_blob`] requires to be little-endian.
    pub fn i32(name: &'a str, shape: &'a [u32], data: &'a [i32]) -> Self {
        TensorSpec {
            name,
            dtype: DType::I32,
            shape,
            data: bytemuck::cast_slice(data),
        }
    }

    /// Native byte order, which [`write_blob`] requires to be little-endian.
    pub fn f32(name: &'a str, shape: &'a [u32], data: &'a [f32]) -> Self {
        TensorSpec {
            name,
            dtype: DType::F32,
            shape,
            data: bytemuck::cast_slice(data),
        }
    }
}

fn put_u32(out: &mut [u8], at: usize, v: u32) {
    out[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn align_up(n: usize) -> Option<usize> {
    n.checked_add(ALIGN - 1).map(|v| v / ALIGN * ALIGN)
}

/// The byte length of the blob [`write_blob`] makes of `tensors`.
pub fn blob_len(tensors: &[TensorSpec]) -> Result<usize, BlobError> {
    let overflow = BlobError::BadWrite("blob larger than 4 GiB");
    let mut end = tensors
        .len()
        .checked_mul(ENTRY_LEN)
        .and_then(|t| t.checked_add(HEADER_LEN))
        .ok_or(overflow)?;
    for t in tensors {
        end = end.checked_add(t.name.len()).ok_or(overflow)?;
    }
    for t in tensors {
        end = align_up(end)
            .and_then(|e| e.checked_add(t.data.len()))
            .ok_or(overflow)?;
    }
    let end = align_up(end).ok_or(overflow)?;
    if end > u32::MAX as usize {
        return Err(overflow);
    }
    Ok(end)
}

/// Writes the blob of `config` and `tensors` into `out` (at least [`blob_len`] bytes) and
/// returns its length. Checks everything [`super::blob::Blob::parse`] will.
pub fn write_blob(
    config: &BlobConfig,
    tensors: &[TensorSpec],
    out: &mut [u8],
) -> Result<usize, BlobError> {
    if cfg!(target_endian = "big") {
        return Err(BlobError::BadWrite("the writer needs a little-endian host"));
    }
    config.validate()?;
    if tensors.len() > MAX_TENSORS {
        return Err(BlobError::BadWrite("too many tensors"));
    }
    let total = blob_len(tensors)?;
    if out.len() < total {
        return Err(BlobError::BadWrite("output buffer too short"));
    }
    let out = &mut out[..total];
    out.fill(0);
    put_u32(out, 8, VERSION);
    put_u32(out, 16, total as u32);
    put_u32(out, 20, tensors.len() as u32);
    for (k, v) in [
        config.img_channels,
        config.img_resolution,
        config.ch,
        config.blocks,
        config.groups,
        config.levels,
        config.mult[0],
        config.mult[1],
        config.mult[2],
        config.mult[3],
        config.sigma_data.to_bits(),
        config.sigma.to_bits(),
    ]
    .into_iter()
    .enumerate()
    {
        put_u32(out, 24 + 4 * k, v);
    }
    let mut names_at = HEADER_LEN + tensors.len() * ENTRY_LEN;
    let mut data_at = names_at + tensors.iter().map(|t| t.name.len()).sum::<usize>();
    for (i, t) in tensors.iter().enumerate() {
        if t.name.is_empty() || t.name.len() > MAX_NAME {
            return Err(BlobError::BadWrite("tensor name empty or too long"));
        }
        if tensors[..i].iter().any(|u| u.name == t.name) {
            return Err(BlobError::BadWrite("duplicate tensor name"));
        }
        if t.shape.is_empty() || t.shape.len() > 4 || t.shape.contains(&0) {
            return Err(BlobError::BadWrite("rank must be 1..=4 with positive dims"));
        }
        let elements = t
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d as usize));
        if elements.and_then(|n| n.checked_mul(t.dtype.size())) != Some(t.data.len()) {
            return Err(BlobError::BadWrite("tensor data disagrees with its shape"));
        }
        // blob_len succeeded, so none of these offsets overflow.
        data_at = data_at.div_ceil(ALIGN) * ALIGN;
        let e = HEADER_LEN + i * ENTRY_LEN;
        let mut fields = [0u32; 10];
        fields[0] = names_at as u32;
        fields[1] = t.name.len() as u32;
        fields[2] = t.dtype.code();
        fields[3] = t.shape.len() as u32;
        fields[4..4 + t.shape.len()].copy_from_slice(t.shape);
        fields[8] = data_at as u32;
        fields[9] = t.data.len() as u32;
        for (k, &v) in fields.iter().enumerate() {
            put_u32(out, e + 4 * k, v);
        }
        out[names_at..names_at + t.name.len()].copy_from_slice(t.name.as_bytes());
        out[data_at..data_at + t.data.len()].copy_from_slice(t.data);
        names_at += t.name.len();
        data_at += t.data.len();
    }
    out[..8].copy_from_slice(&MAGIC);
    let crc = crc32(&out[16..]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    Ok(total)
}
