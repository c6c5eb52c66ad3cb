//! A step whose forces are unusable (non-finite, or above `[run] max_force`): which atoms, and
//! the closest pair. Both platforms report it (the CPU in `crate::simulation`, the GPU in
//! `crate::gpu`), and the run saves the state before that step.

/// What went wrong in a step that produced unusable forces.
#[derive(Debug, Clone)]
pub struct BlowUp {
    pub step: u64,
    /// (atom id, 1-based; species; |F| in eV/Å, NaN if not finite), worst first.
    pub atoms: Vec<(usize, String, f64)>,
    pub limit: f64,
    /// Closest pair at the bad step: (id, id, distance Å).
    pub closest: Option<(usize, usize, f64)>,
    /// Why the potential gave no forces at all, when it knows (it cannot evaluate this
    /// configuration): reported instead of the atoms.
    pub reason: Option<String>,
}

impl std::fmt::Display for BlowUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(reason) = &self.reason {
            return write!(f, "step {}: the potential could not evaluate the forces: {reason}", self.step);
        }
        write!(f, "step {}: unusable forces on ", self.step)?;
        let list: Vec<String> = self
            .atoms
            .iter()
            .map(|(id, name, mag)| {
                if mag.is_finite() {
                    format!("atom {id} ({name}, |F| = {mag:.3e} eV/Å)")
                } else {
                    format!("atom {id} ({name}, non-finite)")
                }
            })
            .collect();
        write!(
            f,
            "{} (limit {:.3e} eV/Å, [run] max_force)",
            list.join(", "),
            self.limit
        )?;
        if let Some((i, j, r)) = self.closest {
            write!(f, "; closest pair: atoms {i} and {j} at {r:.4} Å")?;
        }
        Ok(())
    }
}

