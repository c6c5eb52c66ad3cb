//! Fuzzes the deck reader, the interpreter and the formula evaluator: any text must end in
//! Ok or a located error, never a panic or a hang. The deck runs sandboxed (no files; caps on
//! commands, atoms, steps and cutoffs), and a one-line input is also evaluated as a formula.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mdrun::deck::{Deck, DeckOptions, Echo, interp::Sandbox};

struct Values;

impl mdrun::deck::expr::Context for Values {
    fn word(&mut self, name: &str) -> Result<f64, String> {
        match name {
            "temp" => Ok(1.5),
            "v_a" => Ok(-2.0),
            _ => Err(format!("unknown {name}")),
        }
    }
    fn function(&mut self, _: &str, _: &[&str]) -> Option<Result<f64, String>> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if !text.contains('\n') {
        let _ = mdrun::deck::expr::evaluate(text, &mut Values);
        let _ = mdrun::deck::cformat::printf(text, 1.25);
    }
    let options = DeckOptions {
        log: None,
        screen: false,
        echo: Echo::None,
        threads: Some(1),
        sandbox: Some(Sandbox { max_commands: 500, max_atoms: 300, max_steps: 50, max_cutoff: 10.0 }),
        ..DeckOptions::default()
    };
    let mut deck = Deck::new(options).expect("no files to open");
    let _ = deck.run_text(std::path::Path::new("fuzz.in"), text);
});
