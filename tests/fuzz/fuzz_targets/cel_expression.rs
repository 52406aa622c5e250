#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| diaban_server::fuzz::cel_expression(data));
