#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vault_fuzz::agent_request(data));
