// Placeholder until generated.
pub const IMAGES: usize = 0;
pub const IMAGE_LEN: usize = 784;
pub const SCRATCH_WORDS: usize = 1;
