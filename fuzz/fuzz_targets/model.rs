//! Fuzzes mdrun's model reader (`mdrun::fuzzing::read("model", ...)`): any bytes must end in Ok or
//! an error, never a panic, an abort or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mdrun::fuzzing::read("model", data);
});
