//! LAMMPS unit styles `lj`, `metal` and `real`, as factors from the style's units to mdrun's
//! internal (`metal`) units. The factors follow from LAMMPS's own constants (update.cpp):
//! for `real`, the energy unit is fixed by LAMMPS's mvv2e and the temperature unit by its
//! boltz, so that the dynamics and the temperatures mdrun computes with its metal constants
//! are those LAMMPS computes in the deck's units, to rounding.

use crate::units::{BOLTZ, MVV2E, NKTV2P};

/// LAMMPS `real` constants (update.cpp).
const REAL_BOLTZ: f64 = 0.0019872067;
const REAL_MVV2E: f64 = 48.88821291 * 48.88821291;
const REAL_NKTV2P: f64 = 68568.415;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitStyle {
    pub name: &'static str,
    /// One style unit in internal units: Å, ps, eV, amu, K, bar.
    pub length: f64,
    pub time: f64,
    pub energy: f64,
    pub mass: f64,
    pub temperature: f64,
    pub pressure: f64,
    /// The style's default timestep and neighbour skin, in style units.
    pub default_dt: f64,
    pub default_skin: f64,
}

impl UnitStyle {
    pub const NAMES: &'static str = "lj, metal, real";

    pub fn parse(name: &str) -> Option<UnitStyle> {
        Some(match name {
            "metal" => UnitStyle {
                name: "metal",
                length: 1.0,
                time: 1.0,
                energy: 1.0,
                mass: 1.0,
                temperature: 1.0,
                pressure: 1.0,
                default_dt: 0.001,
                default_skin: 2.0,
            },
            // sigma = 1 Å, epsilon = 1 eV, m = 1 amu: tau = sqrt(amu Å² / eV), T* = kB T / eV.
            "lj" => UnitStyle {
                name: "lj",
                length: 1.0,
                time: MVV2E.sqrt(),
                energy: 1.0,
                mass: 1.0,
                temperature: 1.0 / BOLTZ,
                pressure: NKTV2P,
                default_dt: 0.005,
                default_skin: 0.3,
            },
            "real" => {
                let energy = MVV2E * 1e6 / REAL_MVV2E;
                UnitStyle {
                    name: "real",
                    length: 1.0,
                    time: 1e-3,
                    energy,
                    mass: 1.0,
                    temperature: energy * REAL_BOLTZ / BOLTZ,
                    pressure: energy * NKTV2P / REAL_NKTV2P,
                    default_dt: 1.0,
                    default_skin: 2.0,
                }
            }
            _ => return None,
        })
    }

    pub fn velocity(&self) -> f64 {
        self.length / self.time
    }

    pub fn force(&self) -> f64 {
        self.energy / self.length
    }

    /// One style unit of `dimension` in internal units.
    pub fn of(&self, dimension: crate::units::Dimension) -> f64 {
        use crate::units::Dimension;
        match dimension {
            Dimension::Energy => self.energy,
            Dimension::Length => self.length,
            Dimension::InverseLength => 1.0 / self.length,
            Dimension::Time => self.time,
            Dimension::Mass => self.mass,
            Dimension::Temperature => self.temperature,
            Dimension::Pressure => self.pressure,
            Dimension::Force => self.force(),
        }
    }

    /// Thermo output of extensive quantities is per atom by default in `lj` (LAMMPS).
    pub fn default_norm(&self) -> bool {
        self.name == "lj"
    }

    /// How LAMMPS names the time unit in its run summary.
    pub fn time_name(&self) -> &'static str {
        match self.name {
            "lj" => "tau",
            "real" => "ns",
            _ => "ns",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_are_consistent_with_lammps_constants() {
        let real = UnitStyle::parse("real").unwrap();
        // 1 kcal/mol in eV, and 1 atm in bar, to LAMMPS's precision.
        assert!((real.energy / 0.0433641 - 1.0).abs() < 1e-5);
        assert!((real.pressure / 1.01325 - 1.0).abs() < 1e-5);
        // Temperatures in K stay K (to LAMMPS's constants' precision).
        assert!((real.temperature - 1.0).abs() < 1e-6);
        let lj = UnitStyle::parse("lj").unwrap();
        assert!((lj.time - 0.0101805).abs() < 1e-6);
        assert!(UnitStyle::parse("si").is_none());
    }
}
