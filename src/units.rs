//! Units. mdrun works internally in LAMMPS `metal` units: eV, Å, ps, amu, K, bar.
//!
//! The conversion constants are LAMMPS's own (its `update.cpp`, `units metal`), so that numbers
//! printed by mdrun and by LAMMPS for the same system agree to the last printed digit.
//!
//! Input files may give a quantity as a bare number (already in internal units) or as a string
//! with a unit, `"2 fs"`, `"300 K"`, `"0.2 kJ/mol"`; [`parse_quantity`] turns such a string into
//! the internal value after checking that the unit has the expected [`Dimension`].
//! To accept a new unit, add a row to [`UNITS`].

use std::fmt;

/// Boltzmann's constant, eV/K.
pub const BOLTZ: f64 = 8.617343e-5;
/// m v^2 (amu Å²/ps²) to energy (eV).
pub const MVV2E: f64 = 1.0364269e-4;
/// F/m (eV/Å/amu) to acceleration (Å/ps²).
pub const FTM2V: f64 = 1.0 / 1.0364269e-4;
/// Energy density (eV/Å³) to pressure (bar).
pub const NKTV2P: f64 = 1.6021765e6;

/// What a quantity measures. Every unit belongs to exactly one dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    Length,
    /// 1/length (Morse's alpha).
    InverseLength,
    Time,
    Energy,
    Temperature,
    Mass,
    Pressure,
    Force,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Length => "a length",
            Dimension::InverseLength => "an inverse length",
            Dimension::Time => "a time",
            Dimension::Energy => "an energy",
            Dimension::Temperature => "a temperature",
            Dimension::Mass => "a mass",
            Dimension::Pressure => "a pressure",
            Dimension::Force => "a force",
        }
    }

    /// The units accepted for this dimension, for error messages.
    pub fn unit_list(self) -> String {
        UNITS
            .iter()
            .filter(|u| u.1 == self)
            .map(|u| u.0)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const KCAL_PER_MOL: f64 = 0.0433641043;
const KJ_PER_MOL: f64 = 0.0103642688;

/// (unit, dimension, value of one such unit in internal units). The first unit of each
/// dimension is the internal one.
pub const UNITS: &[(&str, Dimension, f64)] = &[
    ("A", Dimension::Length, 1.0),
    ("Å", Dimension::Length, 1.0),
    ("Angstrom", Dimension::Length, 1.0),
    ("nm", Dimension::Length, 10.0),
    ("pm", Dimension::Length, 0.01),
    ("bohr", Dimension::Length, 0.529177210903),
    ("1/A", Dimension::InverseLength, 1.0),
    ("1/Å", Dimension::InverseLength, 1.0),
    ("1/Angstrom", Dimension::InverseLength, 1.0),
    ("1/nm", Dimension::InverseLength, 0.1),
    ("1/bohr", Dimension::InverseLength, 1.0 / 0.529177210903),
    ("ps", Dimension::Time, 1.0),
    ("fs", Dimension::Time, 1e-3),
    ("ns", Dimension::Time, 1e3),
    ("eV", Dimension::Energy, 1.0),
    ("meV", Dimension::Energy, 1e-3),
    ("kcal/mol", Dimension::Energy, KCAL_PER_MOL),
    ("kJ/mol", Dimension::Energy, KJ_PER_MOL),
    ("Ha", Dimension::Energy, 27.211386245988),
    ("Ry", Dimension::Energy, 13.605693122994),
    ("K*kB", Dimension::Energy, BOLTZ),
    ("K", Dimension::Temperature, 1.0),
    ("amu", Dimension::Mass, 1.0),
    ("Da", Dimension::Mass, 1.0),
    ("g/mol", Dimension::Mass, 1.0),
    ("bar", Dimension::Pressure, 1.0),
    ("atm", Dimension::Pressure, 1.01325),
    ("Pa", Dimension::Pressure, 1e-5),
    ("kPa", Dimension::Pressure, 1e-2),
    ("MPa", Dimension::Pressure, 10.0),
    ("GPa", Dimension::Pressure, 1e4),
    ("eV/A", Dimension::Force, 1.0),
    ("eV/Å", Dimension::Force, 1.0),
    ("kcal/mol/A", Dimension::Force, KCAL_PER_MOL),
    ("kJ/mol/nm", Dimension::Force, KJ_PER_MOL / 10.0),
];

/// Why a quantity string was refused; the caller adds where it came from.
#[derive(Debug, Clone, PartialEq)]
pub enum QuantityError {
    NotANumber(String),
    UnknownUnit(String),
    WrongDimension { unit: String, found: Dimension },
}

impl QuantityError {
    pub fn describe(&self, expected: Dimension) -> String {
        match self {
            QuantityError::NotANumber(s) => format!(
                "'{s}' is not a number followed by a unit; expected {expected} such as '{}'",
                example(expected)
            ),
            QuantityError::UnknownUnit(u) => format!(
                "unknown unit '{u}'; {expected} takes one of: {}",
                expected.unit_list()
            ),
            QuantityError::WrongDimension { unit, found } => format!(
                "'{unit}' is {found}, but {expected} was expected (units: {})",
                expected.unit_list()
            ),
        }
    }
}

fn example(d: Dimension) -> &'static str {
    match d {
        Dimension::Length => "3.4 A",
        Dimension::InverseLength => "1.3 1/A",
        Dimension::Time => "2 fs",
        Dimension::Energy => "0.0103 eV",
        Dimension::Temperature => "300 K",
        Dimension::Mass => "39.948 amu",
        Dimension::Pressure => "1 bar",
        Dimension::Force => "10 eV/A",
    }
}

/// Parses `"<number> <unit>"` (the space is optional) into internal units. A bare number is
/// taken as already being in internal units.
pub fn parse_quantity(text: &str, expected: Dimension) -> Result<f64, QuantityError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(text.len());
    // 'e' may start a unit ("eV"): back off while the number part does not parse.
    let mut cut = split;
    let value = loop {
        match text[..cut].trim().parse::<f64>() {
            Ok(v) => break v,
            Err(_) if cut > 0 => cut -= 1,
            Err(_) => return Err(QuantityError::NotANumber(text.to_string())),
        }
    };
    let unit = text[cut..].trim();
    if unit.is_empty() {
        return Ok(value);
    }
    match UNITS.iter().find(|u| u.0 == unit) {
        Some(&(_, dim, scale)) if dim == expected => Ok(value * scale),
        Some(&(_, dim, _)) => Err(QuantityError::WrongDimension {
            unit: unit.to_string(),
            found: dim,
        }),
        None => Err(QuantityError::UnknownUnit(unit.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_checks_dimensions() {
        assert_eq!(parse_quantity("2 fs", Dimension::Time).unwrap(), 2e-3);
        assert_eq!(
            parse_quantity("300K", Dimension::Temperature).unwrap(),
            300.0
        );
        assert_eq!(parse_quantity("1e-3 eV", Dimension::Energy).unwrap(), 1e-3);
        assert_eq!(parse_quantity("5", Dimension::Length).unwrap(), 5.0);
        assert!(
            (parse_quantity("1 kcal/mol", Dimension::Energy).unwrap() - 0.0433641).abs() < 1e-7
        );
        assert!(matches!(
            parse_quantity("2 A", Dimension::Time),
            Err(QuantityError::WrongDimension { .. })
        ));
        assert!(matches!(
            parse_quantity("2 parsec", Dimension::Length),
            Err(QuantityError::UnknownUnit(_))
        ));
        assert!(matches!(
            parse_quantity("fast", Dimension::Time),
            Err(QuantityError::NotANumber(_))
        ));
    }
}
