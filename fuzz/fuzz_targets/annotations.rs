#![no_main]
// See sluice::fuzz::annotations for what is fed and what must hold.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzz::annotations(data));
