//! The thermo table of a deck, as LAMMPS prints it: `thermo_style one|multi|custom`, its
//! keywords in the deck's units (per atom with `thermo_modify norm yes`, the default in `lj`),
//! and LAMMPS's column layout.

use super::cformat;
use super::units::UnitStyle;
use crate::thermo::ThermoSample;

/// The quantities of one step, in internal units, that thermo keywords are made from.
#[derive(Clone, Debug)]
pub struct ThermoState {
    pub step: u64,
    pub sample: ThermoSample,
    pub natoms: usize,
    /// Largest |F| and the 2-norm of all forces, eV/Å.
    pub fmax: f64,
    pub fnorm: f64,
    /// Tail-correction energy, eV.
    pub etail: f64,
    /// Box bounds, deck units.
    pub lo: [f64; 3],
    pub hi: [f64; 3],
    /// amu
    pub total_mass: f64,
    /// Deck units.
    pub dt: f64,
    /// Seconds since the run started.
    pub cpu: f64,
    pub run_first: u64,
    pub nbuild: u64,
    /// Energy the thermostat and barostat exchanged (LAMMPS `ecouple`), eV.
    pub ecouple: f64,
}

/// Keywords known to thermo_style custom and to formulas, for error messages.
pub const KEYWORDS: &str = "step elapsed elaplong dt time cpu tpcpu spcpu atoms temp press pe ke etotal enthalpy evdwl ecoul epair ebond eangle edihed eimp emol elong etail vol density lx ly lz xlo xhi ylo yhi zlo zhi xy xz yz xlat ylat zlat pxx pyy pzz pxy pxz pyz fmax fnorm nbuild ndanger cella cellb cellc cellalpha cellbeta cellgamma v_NAME";

/// Whether a keyword prints as an integer.
pub fn is_int(key: &str) -> bool {
    matches!(key, "step" | "elapsed" | "elaplong" | "atoms" | "nbuild" | "ndanger")
}

/// Extensive keywords, divided by the atom count under `norm yes`.
fn extensive(key: &str) -> bool {
    matches!(
        key,
        "pe" | "ke" | "etotal" | "ecouple" | "econserve" | "enthalpy" | "evdwl" | "ecoul" | "epair" | "ebond" | "eangle" | "edihed" | "eimp" | "emol" | "elong" | "etail"
    )
}

/// The value of a thermo keyword (not `v_`) in the deck's units; None if unknown.
pub fn value(state: &ThermoState, key: &str, u: &UnitStyle, norm: bool, lattice: Option<[f64; 3]>) -> Option<Result<f64, String>> {
    let s = &state.sample;
    let e = |x: f64| x / u.energy;
    let p = |x: f64| x / u.pressure;
    let len = |d: usize| state.hi[d] - state.lo[d];
    let v = match key {
        "step" => state.step as f64,
        "elapsed" => (state.step - state.run_first) as f64,
        "elaplong" => (state.step - state.run_first) as f64,
        "dt" => state.dt,
        "time" => state.step as f64 * state.dt,
        "cpu" => state.cpu,
        "tpcpu" | "spcpu" => {
            let steps = (state.step - state.run_first) as f64;
            if state.cpu <= 0.0 || steps == 0.0 {
                0.0
            } else if key == "spcpu" {
                steps / state.cpu
            } else {
                steps * state.dt / state.cpu
            }
        }
        "atoms" => state.natoms as f64,
        "temp" => s.temperature / u.temperature,
        "press" => p(s.pressure),
        "pe" | "evdwl" | "epair" => e(s.potential_energy),
        "ke" => e(s.kinetic_energy),
        "etotal" => e(s.total_energy()),
        // Energy the thermostats exchanged with their reservoirs (fix nvt/npt/nph and
        // temp/csvr; fix langevin without `tally yes`, which decks refuse, counts none).
        "ecouple" => e(state.ecouple),
        "econserve" => e(s.total_energy() + state.ecouple),
        "enthalpy" => e(s.total_energy() + s.pressure * s.volume / crate::units::NKTV2P),
        "ecoul" | "ebond" | "eangle" | "edihed" | "eimp" | "emol" | "elong" => 0.0,
        "etail" => e(state.etail),
        "vol" => len(0) * len(1) * len(2),
        "density" => {
            // Mass per volume; g/cm³ outside lj (LAMMPS's mv2d).
            let m = state.total_mass / u.mass;
            let factor = if u.name == "lj" { 1.0 } else { 1.0 / 0.602214129 };
            m * factor / (len(0) * len(1) * len(2))
        }
        "lx" | "cella" => len(0),
        "ly" | "cellb" => len(1),
        "lz" | "cellc" => len(2),
        "xlo" => state.lo[0],
        "xhi" => state.hi[0],
        "ylo" => state.lo[1],
        "yhi" => state.hi[1],
        "zlo" => state.lo[2],
        "zhi" => state.hi[2],
        "xy" | "xz" | "yz" => 0.0,
        "cellalpha" | "cellbeta" | "cellgamma" => 90.0,
        "xlat" | "ylat" | "zlat" => {
            let Some(l) = lattice else {
                return Some(Err(format!("thermo keyword {key} needs a lattice")));
            };
            l[(key.as_bytes()[0] - b'x') as usize]
        }
        "pxx" => p(s.pressure_tensor[0]),
        "pyy" => p(s.pressure_tensor[1]),
        "pzz" => p(s.pressure_tensor[2]),
        "pxy" => p(s.pressure_tensor[3]),
        "pxz" => p(s.pressure_tensor[4]),
        "pyz" => p(s.pressure_tensor[5]),
        "fmax" => state.fmax / u.force(),
        "fnorm" => state.fnorm / u.force(),
        "nbuild" => state.nbuild as f64,
        "ndanger" => 0.0,
        _ => return None,
    };
    if norm && extensive(key) && state.natoms > 0 {
        Some(Ok(v / state.natoms as f64))
    } else {
        Some(Ok(v))
    }
}

/// The column title LAMMPS prints for a keyword.
pub fn title(key: &str) -> String {
    let t = match key {
        "step" => "Step",
        "elapsed" => "Elapsed",
        "elaplong" => "Elaplong",
        "dt" => "Dt",
        "time" => "Time",
        "cpu" => "CPU",
        "tpcpu" => "T/CPU",
        "spcpu" => "S/CPU",
        "atoms" => "Atoms",
        "temp" => "Temp",
        "press" => "Press",
        "pe" => "PotEng",
        "ke" => "KinEng",
        "etotal" => "TotEng",
        "ecouple" => "Ecouple",
        "econserve" => "Econserve",
        "enthalpy" => "Enthalpy",
        "evdwl" => "E_vdwl",
        "ecoul" => "E_coul",
        "epair" => "E_pair",
        "ebond" => "E_bond",
        "eangle" => "E_angle",
        "edihed" => "E_dihed",
        "eimp" => "E_impro",
        "emol" => "E_mol",
        "elong" => "E_long",
        "etail" => "E_tail",
        "vol" => "Volume",
        "density" => "Density",
        "lx" => "Lx",
        "ly" => "Ly",
        "lz" => "Lz",
        "xlo" => "Xlo",
        "xhi" => "Xhi",
        "ylo" => "Ylo",
        "yhi" => "Yhi",
        "zlo" => "Zlo",
        "zhi" => "Zhi",
        "xy" => "Xy",
        "xz" => "Xz",
        "yz" => "Yz",
        "xlat" => "Xlat",
        "ylat" => "Ylat",
        "zlat" => "Zlat",
        "pxx" => "Pxx",
        "pyy" => "Pyy",
        "pzz" => "Pzz",
        "pxy" => "Pxy",
        "pxz" => "Pxz",
        "pyz" => "Pyz",
        "fmax" => "Fmax",
        "fnorm" => "Fnorm",
        "nbuild" => "Nbuild",
        "ndanger" => "Ndanger",
        "cella" => "Cella",
        "cellb" => "Cellb",
        "cellc" => "Cellc",
        "cellalpha" => "CellAlpha",
        "cellbeta" => "CellBeta",
        "cellgamma" => "CellGamma",
        other => other,
    };
    t.to_string()
}

/// `thermo_style` as set by the deck.
#[derive(Clone, Debug, PartialEq)]
pub struct ThermoStyle {
    pub keys: Vec<String>,
    pub multi: bool,
    /// thermo_modify format float / int.
    pub float_format: Option<String>,
    pub int_format: Option<String>,
}

pub const ONE: &[&str] = &["step", "temp", "epair", "emol", "etotal", "press"];
pub const MULTI: &[&str] = &["etotal", "ke", "temp", "pe", "ebond", "eangle", "edihed", "eimp", "evdwl", "ecoul", "elong", "press"];

impl Default for ThermoStyle {
    fn default() -> Self {
        ThermoStyle { keys: ONE.iter().map(|s| s.to_string()).collect(), multi: false, float_format: None, int_format: None }
    }
}

/// `text` centred in `width`, the odd blank on the left (`left_heavy`) or on the right.
fn centre(text: &str, width: usize, left_heavy: bool) -> String {
    if text.len() >= width {
        return text.to_string();
    }
    let pad = width - text.len();
    let left = if left_heavy { pad.div_ceil(2) } else { pad / 2 };
    format!("{}{text}{}", " ".repeat(left), " ".repeat(pad - left))
}

// LAMMPS's one-line layout (read off its output): an integer column is 10 wide, right-aligned;
// a float column 14 wide, a blank for the sign of positive numbers, then %.8g left-aligned; two
// blanks follow an integer column and one a float column. A user format (`thermo_modify format
// float`) replaces the float body; the titles keep the default widths.
impl ThermoStyle {
    /// The header line (one-line style only; multi has none).
    pub fn header(&self) -> Option<String> {
        if self.multi {
            return None;
        }
        let mut line = String::new();
        for (n, k) in self.keys.iter().enumerate() {
            if n > 0 {
                line.push_str(if is_int(&self.keys[n - 1]) { "  " } else { " " });
            }
            if is_int(k) {
                line.push_str(&centre(&title(k), 10, true));
            } else {
                line.push_str(&centre(&title(k), 14, false));
            }
        }
        Some(line)
    }

    /// One row of values (in the order of `keys`).
    pub fn row(&self, values: &[f64], cpu: f64) -> Result<String, String> {
        let mut line = String::new();
        if self.multi {
            let step = self.keys.iter().position(|k| k == "step").map(|i| values[i]).unwrap_or(0.0);
            line.push_str(&format!("------------ Step {:>14} ----- CPU = {:>12} (sec) -------------", step as i64, cformat::g(cpu, 7)));
            let mut n = 0;
            for (k, v) in self.keys.iter().zip(values) {
                if k == "step" {
                    continue;
                }
                if n % 3 == 0 {
                    line.push('\n');
                }
                n += 1;
                let text = match (&self.float_format, is_int(k)) {
                    (_, true) => format!("{:>14}", *v as i64),
                    (Some(f), false) => cformat::printf(f, *v)?,
                    (None, false) => format!("{:>14.4}", v),
                };
                line.push_str(&format!("{:<8} = {text} ", title(k)));
            }
            return Ok(line);
        }
        for (n, (k, v)) in self.keys.iter().zip(values).enumerate() {
            if n > 0 {
                line.push_str(if is_int(&self.keys[n - 1]) { "  " } else { " " });
            }
            if is_int(k) {
                match &self.int_format {
                    Some(f) => line.push_str(&cformat::printf(f, *v)?),
                    None => line.push_str(&format!("{:>10}", *v as i64)),
                }
            } else {
                match &self.float_format {
                    Some(f) => line.push_str(&cformat::printf(f, *v)?),
                    None => {
                        let g = cformat::g(*v, 8);
                        let signed = if g.starts_with('-') { g } else { format!(" {g}") };
                        line.push_str(&format!("{signed:<14}"));
                    }
                }
            }
        }
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_lammps_one_style() {
        // Lines as LAMMPS 22 Jul 2025 prints them.
        let style = ThermoStyle::default();
        assert_eq!(
            style.header().unwrap(),
            "   Step          Temp          E_pair         E_mol          TotEng         Press     "
        );
        assert_eq!(
            style.row(&[0.0, 1.44, -6.77336812, 0.0, -4.61343561, -5.01970733], 0.0).unwrap(),
            "         0   1.44          -6.7733681      0             -4.6134356     -5.0197073    "
        );
        let keys = ["step", "atoms", "temp", "pe", "elapsed", "press"].map(str::to_string).to_vec();
        let custom = ThermoStyle { keys, ..ThermoStyle::default() };
        assert_eq!(custom.header().unwrap(), "   Step        Atoms         Temp          PotEng       Elapsed       Press     ");
        assert_eq!(
            custom.row(&[0.0, 64.0, 0.0, -3.98233644693, 0.0, 16.8432843], 0.0).unwrap(),
            "         0          64   0             -3.9823364              0   16.843284    "
        );
        let user = ThermoStyle { float_format: Some("%20.15g".into()), ..custom };
        assert_eq!(
            user.row(&[0.0, 57.0, 250.098037960271, -0.576517625114665], 0.0).unwrap(),
            "         0          57      250.098037960271   -0.576517625114665"
        );
    }
}
