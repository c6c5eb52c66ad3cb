//! Fuzzes mdrun's structure reader (`mdrun::fuzzing::read("structure", ...)`): any bytes must end in Ok or
//! an error, never a panic, an abort or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mdrun::fuzzing::read("structure", data);
});
