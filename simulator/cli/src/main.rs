//! `sovereign`: the one binary.
fn main() {}
