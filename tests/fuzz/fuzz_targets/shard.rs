//! Fuzz target `shard`: see `sovereign_hostile` (tests/hostile) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sovereign_hostile::check("shard", data);
});
