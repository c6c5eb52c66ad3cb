//! Fuzzes mdrun's plan reader (`mdrun::fuzzing::read("plan", ...)`): any bytes must end in Ok or
//! an error, never a panic, an abort or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mdrun::fuzzing::read("plan", data);
});
