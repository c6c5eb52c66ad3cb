//! Fuzzes mdrun's trajectory reader (`mdrun::fuzzing::read("trajectory", ...)`): any bytes must end in Ok or
//! an error, never a panic, an abort or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mdrun::fuzzing::read("trajectory", data);
});
