//! The `ambient` command (to be written).
fn main() {}
