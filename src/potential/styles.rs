//! The registry of pair styles (LAMMPS's `PairStyle(name, class)` registrations): every
//! front end finds a style here by name (`crate::potential::pair` says what a style is).

use super::pair::PairStyle;

/// Every pair style mdrun has, LAMMPS's `PairStyle(...)` registrations.
pub static STYLES: &[&PairStyle] = &[&super::lj::STYLE, &super::morse::STYLE];

/// The style LAMMPS calls `name` (`pair_style NAME`).
pub fn by_lammps_name(name: &str) -> Option<&'static PairStyle> {
    STYLES.iter().copied().find(|s| s.lammps == name)
}

/// The style `system.toml` calls `name` (`[potential] type = NAME`).
pub fn by_toml_name(name: &str) -> Option<&'static PairStyle> {
    STYLES.iter().copied().find(|s| s.toml_names.contains(&name))
}

