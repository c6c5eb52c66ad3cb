//! Thermodynamic output: the quantities of one step, computed as LAMMPS computes them, and
//! their layout as a table (terminal and thermo log share it).

use crate::system::System;
use crate::units::{BOLTZ, NKTV2P};

/// A committee's disagreement (`crate::potential::committee`) on the forces of one configuration: per atom,
/// ε_i = sqrt(⟨|F_i − ⟨F_i⟩|²⟩) over the members (eV/Å); its largest and mean value over atoms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ForceDeviation {
    /// eV/Å
    pub max: f64,
    /// eV/Å
    pub mean: f64,
    /// The atom (0-based) with the largest ε_i.
    pub atom: usize,
}

/// One row of the thermo table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThermoSample {
    pub step: u64,
    pub time_ps: f64,
    /// K, with 3N - 3 degrees of freedom.
    pub temperature: f64,
    /// eV
    pub potential_energy: f64,
    /// eV
    pub kinetic_energy: f64,
    /// bar; zero for a system without a cell.
    pub pressure: f64,
    /// Pressure tensor (bar): xx, yy, zz, xy, xz, yz.
    pub pressure_tensor: [f64; 6],
    /// Å³
    pub volume: f64,
    /// Energy the thermostat and barostat exchanged with the atoms (eV; 0 for NVE and
    /// Langevin): `total_energy + coupling_energy` is what Nosé-Hoover and CSVR conserve.
    pub coupling_energy: f64,
    /// A committee of learned models: how far the members' forces disagree (two more columns).
    pub force_deviation: Option<ForceDeviation>,
}

impl ThermoSample {
    /// Of a system with its potential energy (eV) and virial tensor (eV).
    pub fn new(step: u64, time_ps: f64, system: &System, energy: f64, virial: [[f64; 3]; 3]) -> ThermoSample {
        ThermoSample::from_sums(step, time_ps, system.kinetic_tensor(), system.degrees_of_freedom(), energy, virial, system.cell.volume())
    }

    /// From the sums over atoms: kinetic tensor Σ m v_a v_b (eV), degrees of freedom,
    /// potential energy (eV), virial tensor (eV), volume (Å³; zero without a cell).
    pub fn from_sums(
        step: u64,
        time_ps: f64,
        kinetic: [[f64; 3]; 3],
        dof: f64,
        energy: f64,
        w: [[f64; 3]; 3],
        volume: f64,
    ) -> ThermoSample {
        let kinetic_energy = 0.5 * (kinetic[0][0] + kinetic[1][1] + kinetic[2][2]);
        let mut tensor = [0.0; 6];
        let index = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)];
        if volume > 0.0 {
            for (k, &(a, b)) in index.iter().enumerate() {
                tensor[k] = (kinetic[a][b] + w[a][b]) / volume * NKTV2P;
            }
        }
        ThermoSample {
            step,
            time_ps,
            temperature: 2.0 * kinetic_energy / (dof * BOLTZ),
            potential_energy: energy,
            kinetic_energy,
            pressure: (tensor[0] + tensor[1] + tensor[2]) / 3.0,
            pressure_tensor: tensor,
            volume,
            coupling_energy: 0.0,
            force_deviation: None,
        }
    }

    pub fn total_energy(&self) -> f64 {
        self.potential_energy + self.kinetic_energy
    }

    /// The integrator's conserved quantity: the total energy plus what the thermostat and
    /// barostat exchanged (LAMMPS's `econserve`).
    pub fn conserved_energy(&self) -> f64 {
        self.total_energy() + self.coupling_energy
    }

    /// The committee's columns, after `HEADER`, in rows that have them.
    pub const DEVIATION_HEADER: [&'static str; 2] = ["FDevMax(eV/A)", "FDevMean(eV/A)"];

    pub const HEADER: [&'static str; 9] = [
        "Step",
        "Time(ps)",
        "Temp(K)",
        "PotEng(eV)",
        "KinEng(eV)",
        "TotEng(eV)",
        "Press(bar)",
        "Volume(A3)",
        "Conserved(eV)",
    ];

    /// The column names of rows like this one (with the committee's when it has them).
    pub fn header(&self) -> String {
        let mut line = Self::header_line();
        if self.force_deviation.is_some() {
            line += &format!(" {:>14} {:>14}", Self::DEVIATION_HEADER[0], Self::DEVIATION_HEADER[1]);
        }
        line
    }

    /// The column names of a row without a committee's.
    pub fn header_line() -> String {
        format!(
            "{:>10} {:>12} {:>14} {:>18} {:>18} {:>18} {:>14} {:>14} {:>18}",
            Self::HEADER[0],
            Self::HEADER[1],
            Self::HEADER[2],
            Self::HEADER[3],
            Self::HEADER[4],
            Self::HEADER[5],
            Self::HEADER[6],
            Self::HEADER[7],
            Self::HEADER[8]
        )
    }

    pub fn line(&self) -> String {
        let mut line = self.line_without_deviation();
        if let Some(d) = self.force_deviation {
            line += &format!(" {:>14.6} {:>14.6}", d.max, d.mean);
        }
        line
    }

    fn line_without_deviation(&self) -> String {
        format!(
            "{:>10} {:>12.6} {:>14.6} {:>18.10} {:>18.10} {:>18.10} {:>14.6} {:>14.6} {:>18.10}",
            self.step,
            self.time_ps,
            self.temperature,
            self.potential_energy,
            self.kinetic_energy,
            self.total_energy(),
            self.pressure,
            self.volume,
            self.conserved_energy()
        )
    }
}
