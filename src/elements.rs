//! The periodic table: symbols, atomic numbers and standard atomic masses (amu; IUPAC
//! conventional values, and the mass number of the longest-lived isotope for elements without
//! a standard atomic weight). Users override any mass in `[masses]`.

/// (symbol, mass in amu), indexed by atomic number - 1.
const TABLE: [(&str, f64); 118] = [
    ("H", 1.008),
    ("He", 4.002602),
    ("Li", 6.94),
    ("Be", 9.0121831),
    ("B", 10.81),
    ("C", 12.011),
    ("N", 14.007),
    ("O", 15.999),
    ("F", 18.998403163),
    ("Ne", 20.1797),
    ("Na", 22.98976928),
    ("Mg", 24.305),
    ("Al", 26.9815385),
    ("Si", 28.085),
    ("P", 30.973761998),
    ("S", 32.06),
    ("Cl", 35.45),
    ("Ar", 39.948),
    ("K", 39.0983),
    ("Ca", 40.078),
    ("Sc", 44.955908),
    ("Ti", 47.867),
    ("V", 50.9415),
    ("Cr", 51.9961),
    ("Mn", 54.938044),
    ("Fe", 55.845),
    ("Co", 58.933194),
    ("Ni", 58.6934),
    ("Cu", 63.546),
    ("Zn", 65.38),
    ("Ga", 69.723),
    ("Ge", 72.630),
    ("As", 74.921595),
    ("Se", 78.971),
    ("Br", 79.904),
    ("Kr", 83.798),
    ("Rb", 85.4678),
    ("Sr", 87.62),
    ("Y", 88.90584),
    ("Zr", 91.224),
    ("Nb", 92.90637),
    ("Mo", 95.95),
    ("Tc", 98.0),
    ("Ru", 101.07),
    ("Rh", 102.90550),
    ("Pd", 106.42),
    ("Ag", 107.8682),
    ("Cd", 112.414),
    ("In", 114.818),
    ("Sn", 118.710),
    ("Sb", 121.760),
    ("Te", 127.60),
    ("I", 126.90447),
    ("Xe", 131.293),
    ("Cs", 132.90545196),
    ("Ba", 137.327),
    ("La", 138.90547),
    ("Ce", 140.116),
    ("Pr", 140.90766),
    ("Nd", 144.242),
    ("Pm", 145.0),
    ("Sm", 150.36),
    ("Eu", 151.964),
    ("Gd", 157.25),
    ("Tb", 158.92535),
    ("Dy", 162.500),
    ("Ho", 164.93033),
    ("Er", 167.259),
    ("Tm", 168.93422),
    ("Yb", 173.045),
    ("Lu", 174.9668),
    ("Hf", 178.49),
    ("Ta", 180.94788),
    ("W", 183.84),
    ("Re", 186.207),
    ("Os", 190.23),
    ("Ir", 192.217),
    ("Pt", 195.084),
    ("Au", 196.966569),
    ("Hg", 200.592),
    ("Tl", 204.38),
    ("Pb", 207.2),
    ("Bi", 208.98040),
    ("Po", 209.0),
    ("At", 210.0),
    ("Rn", 222.0),
    ("Fr", 223.0),
    ("Ra", 226.0),
    ("Ac", 227.0),
    ("Th", 232.0377),
    ("Pa", 231.03588),
    ("U", 238.02891),
    ("Np", 237.0),
    ("Pu", 244.0),
    ("Am", 243.0),
    ("Cm", 247.0),
    ("Bk", 247.0),
    ("Cf", 251.0),
    ("Es", 252.0),
    ("Fm", 257.0),
    ("Md", 258.0),
    ("No", 259.0),
    ("Lr", 262.0),
    ("Rf", 267.0),
    ("Db", 270.0),
    ("Sg", 269.0),
    ("Bh", 270.0),
    ("Hs", 270.0),
    ("Mt", 278.0),
    ("Ds", 281.0),
    ("Rg", 281.0),
    ("Cn", 285.0),
    ("Nh", 286.0),
    ("Fl", 289.0),
    ("Mc", 289.0),
    ("Lv", 293.0),
    ("Ts", 293.0),
    ("Og", 294.0),
];

/// The atomic number of an element symbol (exact, case-sensitive as chemistry writes it).
pub fn atomic_number(symbol: &str) -> Option<u32> {
    TABLE
        .iter()
        .position(|e| e.0 == symbol)
        .map(|i| i as u32 + 1)
}

/// The standard atomic mass of an element symbol, amu.
pub fn standard_mass(symbol: &str) -> Option<f64> {
    TABLE.iter().find(|e| e.0 == symbol).map(|e| e.1)
}

/// The symbol of an atomic number.
pub fn symbol(atomic_number: u32) -> Option<&'static str> {
    TABLE
        .get((atomic_number as usize).checked_sub(1)?)
        .map(|e| e.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        assert_eq!(atomic_number("Ar"), Some(18));
        assert_eq!(symbol(8), Some("O"));
        assert_eq!(standard_mass("C"), Some(12.011));
        assert_eq!(atomic_number("Og"), Some(118));
        assert_eq!(atomic_number("ar"), None);
        // masses grow with Z, apart from the known inversions (Ar/K, Co/Ni, Te/I, Th/Pa, U/Np...)
        let inversions = TABLE.windows(2).filter(|w| w[1].1 < w[0].1).count();
        assert!(
            inversions < 10,
            "{inversions} inversions: a typo in the table?"
        );
    }
}
