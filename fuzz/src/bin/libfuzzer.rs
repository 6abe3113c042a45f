//! The libFuzzer driver of every knoop fuzz target (`fuzz/run.sh` builds and runs it): the
//! target is named by `KNOOP_FUZZ_TARGET`, one of `knoop_fuzz::TARGETS`.
#![no_main]

use std::sync::OnceLock;

static TARGET: OnceLock<knoop_fuzz::Target> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let target = TARGET.get_or_init(|| {
        let name = std::env::var("KNOOP_FUZZ_TARGET").unwrap_or_default();
        knoop_fuzz::target(&name)
            .unwrap_or_else(|| panic!("KNOOP_FUZZ_TARGET={name:?} names no fuzz target"))
    });
    target(data);
});
