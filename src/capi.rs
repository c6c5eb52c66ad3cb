//! The C ABI of `crate::library` (header: `include/mdrun.h`), the one door through which the
//! LAMMPS plugin and the Python package reach the model: no second copy of the model code.
//!
//! Conventions: every function that can fail returns 0 on success or -1, with the reason in a
//! thread-local message read by `mdrun_last_error`; a panic inside mdrun is caught here and
//! reported the same way (it must not unwind into C++ or Python). Arrays are row-major f64,
//! owned by the caller, and read or written in place (no copies on the caller's side).

use crate::cell::{Cell, Vec3};
use crate::library::{Evaluator, SameAtoms, Structure};
use crate::ml::inference::Output;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// Adds `len` doubles at `buffer` up over every rank, in place (MPI_Allreduce, MPI_SUM).
pub type ReduceFn = Option<unsafe extern "C" fn(buffer: *mut f64, len: usize, context: *mut c_void)>;
/// Ghost rows of `rows` ([n_atoms][width] floats) from their owners' rows (forward), or owners'
/// rows plus their ghosts' rows (reverse).
pub type ExchangeFn = Option<unsafe extern "C" fn(rows: *mut f32, width: usize, context: *mut c_void)>;

/// `mdrun_structure` in the header.
#[repr(C)]
pub struct CStructure {
    pub n_atoms: usize,
    /// Atoms 0..n_owned count in the energy; the rest are ghosts (a rank's halo).
    pub n_owned: usize,
    /// [n_atoms][3], Å
    pub positions: *const f64,
    /// [n_atoms], 0-based index into the species given at load
    pub types: *const i32,
    /// [3][3], the cell vectors as rows, Å; NULL: open along every axis.
    pub cell: *const f64,
    pub periodic: [i32; 3],
    /// e
    pub charge: f64,
    /// NULL: a whole system.
    pub reduce: ReduceFn,
    pub reduce_context: *mut c_void,
    /// NULL: the ghosts reach the receptive field; else they reach one cutoff and these
    /// refresh them between blocks (both or neither).
    pub exchange_forward: ExchangeFn,
    pub exchange_reverse: ExchangeFn,
    pub exchange_context: *mut c_void,
    /// 1: the same atoms in the same order as the previous call (LAMMPS between
    /// reneighbourings); 0: unknown (the same count, types and cell and small moves count as
    /// the same); -1: not the same. Lets a call reuse the previous call's neighbour list.
    pub same_atoms: i32,
}

/// The host's exchange, called back with the row arrays.
struct HostExchange {
    forward: unsafe extern "C" fn(*mut f32, usize, *mut c_void),
    reverse: unsafe extern "C" fn(*mut f32, usize, *mut c_void),
    context: *mut c_void,
}

impl crate::ml::inference::GhostExchange for HostExchange {
    fn forward(&mut self, rows: &mut [f32], width: usize) {
        // SAFETY: the host's callback reads and writes n_atoms rows of `width` floats.
        unsafe { (self.forward)(rows.as_mut_ptr(), width, self.context) }
    }
    fn reverse(&mut self, rows: &mut [f32], width: usize) {
        // SAFETY: as above.
        unsafe { (self.reverse)(rows.as_mut_ptr(), width, self.context) }
    }
}

/// `mdrun_results` in the header: where an evaluation writes.
#[repr(C)]
pub struct CResults {
    /// eV
    pub energy: f64,
    /// Row-major, eV (LAMMPS's sign: Σ r ⊗ f).
    pub virial: [f64; 9],
    /// [n_atoms][3], eV/Å; required.
    pub forces: *mut f64,
    /// [n_atoms], eV; NULL: not wanted.
    pub atom_energies: *mut f64,
    /// [n_atoms][9], eV; NULL: not wanted.
    pub atom_virials: *mut f64,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// Runs `body`, turning an Err or a panic into -1 and the thread's last error.
fn guarded(body: impl FnOnce() -> Result<(), String>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => 0,
        Ok(Err(message)) => {
            set_error(&message);
            -1
        }
        Err(panic) => {
            let what = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            set_error(&format!("internal error in mdrun (please report it): {what}"));
            -1
        }
    }
}

/// The reason the last failing call on this thread failed ("" if none); valid until the next
/// call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn mdrun_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// mdrun's version, "0.1.0".
#[unsafe(no_mangle)]
pub extern "C" fn mdrun_version() -> *const c_char {
    static VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => panic!("version"),
    };
    VERSION.as_ptr()
}

/// Loads a model (a folder or file written by `mdrun train`) for atom types of the elements in
/// `species` (space-separated symbols, type 0 first), evaluated on `threads` threads (0: all
/// cores). NULL on failure (see `mdrun_last_error`).
///
/// # Safety
/// `path` and `species` are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mdrun_potential_load(path: *const c_char, species: *const c_char, threads: usize) -> *mut Evaluator {
    let mut out = std::ptr::null_mut();
    guarded(|| {
        if path.is_null() || species.is_null() {
            return Err("mdrun_potential_load: path and species are required".into());
        }
        // SAFETY: the caller passes NUL-terminated strings.
        let (path, species) = unsafe { (CStr::from_ptr(path), CStr::from_ptr(species)) };
        let path = path.to_str().map_err(|_| "the model path is not UTF-8".to_string())?;
        let species: Vec<String> = species.to_string_lossy().split_whitespace().map(str::to_string).collect();
        out = Box::into_raw(Box::new(Evaluator::load(Path::new(path), &species, threads)?));
        Ok(())
    });
    out
}

/// Frees a potential (NULL is ignored).
///
/// # Safety
/// `potential` came from `mdrun_potential_load` and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mdrun_potential_free(potential: *mut Evaluator) {
    if !potential.is_null() {
        // SAFETY: the caller hands back a pointer from Box::into_raw.
        drop(unsafe { Box::from_raw(potential) });
    }
}

/// The graph's cutoff, Å.
///
/// # Safety
/// `potential` is a live pointer from `mdrun_potential_load`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mdrun_potential_cutoff(potential: *const Evaluator) -> f64 {
    // SAFETY: the caller's contract.
    unsafe { &*potential }.cutoff()
}

/// blocks x cutoff, Å: how far a rank's ghost atoms must reach.
///
/// # Safety
/// `potential` is a live pointer from `mdrun_potential_load`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mdrun_potential_receptive_field(potential: *const Evaluator) -> f64 {
    // SAFETY: the caller's contract.
    unsafe { &*potential }.receptive_field()
}

/// The widest row a ghost exchange carries (floats per atom): F, or 3F for PaiNN.
///
/// # Safety
/// `potential` is a live pointer from `mdrun_potential_load`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mdrun_potential_exchange_width(potential: *const Evaluator) -> usize {
    // SAFETY: the caller's contract.
    unsafe { &*potential }.exchange_width()
}

/// 1 if the model has learned charges (whole structures only), else 0.
///
/// # Safety
/// `potential` is a live pointer from `mdrun_potential_load`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mdrun_potential_is_long_range(potential: *const Evaluator) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { &*potential }.is_long_range() as c_int
}

/// 1 if the model needs whole structures, never a rank's part (learned charges, a
/// distance-aware MCGM), else 0: a host with domains gathers the system for it.
///
/// # Safety
/// `potential` is a live pointer from `mdrun_potential_load`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mdrun_potential_needs_whole_system(potential: *const Evaluator) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { &*potential }.needs_whole_system() as c_int
}

/// Copies the model's one-line description into `buffer` (NUL-terminated, cut to `len`);
/// returns its full length.
///
/// # Safety
/// `potential` is live; `buffer` has room for `len` bytes (or is NULL with `len` 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mdrun_potential_describe(potential: *const Evaluator, buffer: *mut c_char, len: usize) -> usize {
    // SAFETY: the caller's contract.
    let text = unsafe { &*potential }.description().as_bytes();
    if len > 0 && !buffer.is_null() {
        let n = text.len().min(len - 1);
        // SAFETY: n + 1 <= len bytes fit in the caller's buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buffer as *mut u8, n);
            *buffer.add(n) = 0;
        }
    }
    text.len()
}

/// Evaluates one structure (or one rank's part: all ranks call together when `reduce` is
/// set) into `results`. 0, or -1 with `mdrun_last_error`.
///
/// # Safety
/// `potential` is live; the structure's arrays hold `n_atoms` entries (cell: 9 or NULL), the
/// results' arrays likewise (or NULL where allowed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mdrun_potential_evaluate(potential: *mut Evaluator, structure: *const CStructure, results: *mut CResults) -> c_int {
    guarded(|| {
        // SAFETY: the caller's contract.
        let (evaluator, s, r) = unsafe { (&mut *potential, &*structure, &mut *results) };
        // SAFETY: the arrays hold n_atoms entries.
        let (positions, types) = unsafe { read_atoms(s)? };
        let same_atoms = match s.same_atoms {
            1 => SameAtoms::Yes,
            0 => SameAtoms::Unknown,
            _ => SameAtoms::No,
        };
        let structure = Structure { positions, types: &types, cell: read_cell(s)?, owned: s.n_owned, charge: s.charge, same_atoms };
        let mut exchange = match (s.exchange_forward, s.exchange_reverse) {
            (Some(forward), Some(reverse)) => Some(HostExchange { forward, reverse, context: s.exchange_context }),
            (None, None) => None,
            _ => return Err("exchange_forward and exchange_reverse go together".into()),
        };
        let exchange = exchange.as_mut().map(|e| e as &mut dyn crate::ml::inference::GhostExchange);
        let out = match s.reduce {
            Some(reduce) => {
                let context = s.reduce_context;
                // SAFETY: the host's reduction takes any buffer of doubles.
                evaluator.evaluate(&structure, &mut |buffer: &mut [f64]| unsafe { reduce(buffer.as_mut_ptr(), buffer.len(), context) }, exchange)
            }
            None => evaluator.evaluate(&structure, &mut |_| {}, exchange),
        }?;
        // SAFETY: the results' arrays hold n_atoms entries.
        unsafe { write_results(&out, 0, 0, s.n_atoms, r) };
        Ok(())
    })
}

/// Evaluates `count` whole structures in one batch; results[k] receives structure k.
///
/// # Safety
/// As `mdrun_potential_evaluate`, for each of the `count` structures and results.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mdrun_potential_evaluate_batch(potential: *mut Evaluator, structures: *const CStructure, results: *mut CResults, count: usize) -> c_int {
    guarded(|| {
        if count == 0 {
            return Ok(());
        }
        // SAFETY: the caller's contract.
        let (evaluator, ss, rs) = unsafe { (&mut *potential, std::slice::from_raw_parts(structures, count), std::slice::from_raw_parts_mut(results, count)) };
        let mut held = Vec::with_capacity(count);
        for (k, s) in ss.iter().enumerate() {
            // SAFETY: each structure's arrays hold its n_atoms entries.
            let (positions, types) = unsafe { read_atoms(s) }.map_err(|e| format!("structure {k}: {e}"))?;
            held.push((positions, types, read_cell(s).map_err(|e| format!("structure {k}: {e}"))?));
        }
        let batch: Vec<Structure> = held.iter().zip(ss).map(|((p, t, c), s)| Structure { positions: p, types: t, cell: c.clone(), owned: s.n_owned, charge: s.charge, same_atoms: SameAtoms::No }).collect();
        let out = evaluator.evaluate_batch(&batch)?;
        let mut first = 0;
        for (k, (s, r)) in ss.iter().zip(rs.iter_mut()).enumerate() {
            // SAFETY: results[k]'s arrays hold structure k's n_atoms entries.
            unsafe { write_results(&out, k, first, s.n_atoms, r) };
            first += s.n_atoms;
        }
        Ok(())
    })
}

/// The structure's positions (viewed in place) and types (checked, as indices).
///
/// # Safety
/// `positions` and `types` hold `n_atoms` entries.
unsafe fn read_atoms(s: &CStructure) -> Result<(&[Vec3], Vec<u32>), String> {
    if s.n_atoms == 0 {
        return Ok((&[], Vec::new()));
    }
    if s.positions.is_null() || s.types.is_null() {
        return Err("positions and types are required".into());
    }
    // SAFETY: [f64; 3] has f64's alignment and the caller's array holds n_atoms triples.
    let positions = unsafe { std::slice::from_raw_parts(s.positions as *const Vec3, s.n_atoms) };
    // SAFETY: as above, n_atoms types.
    let raw = unsafe { std::slice::from_raw_parts(s.types, s.n_atoms) };
    let types = raw
        .iter()
        .enumerate()
        .map(|(k, &t)| u32::try_from(t).map_err(|_| format!("atom {}: type {t} is negative", k + 1)))
        .collect::<Result<_, _>>()?;
    Ok((positions, types))
}

fn read_cell(s: &CStructure) -> Result<Cell, String> {
    let periodic = s.periodic.map(|p| p != 0);
    if s.cell.is_null() {
        if periodic.contains(&true) {
            return Err("a periodic axis needs a cell".into());
        }
        return Ok(Cell::open());
    }
    // SAFETY: a non-NULL cell holds 9 doubles.
    let v = unsafe { std::slice::from_raw_parts(s.cell, 9) };
    if !periodic.contains(&true) {
        return Ok(Cell::open());
    }
    Cell::new([[v[0], v[1], v[2]], [v[3], v[4], v[5]], [v[6], v[7], v[8]]], periodic).map_err(|e| format!("cell {v:?}: {e}"))
}

/// Copies structure `k` of `out` (its atoms from `first`) into `r`.
///
/// # Safety
/// `r`'s arrays hold `n` entries (or are NULL where allowed).
unsafe fn write_results(out: &Output, k: usize, first: usize, n: usize, r: &mut CResults) {
    r.energy = out.energy[k];
    r.virial = out.virial[k];
    let atoms = first..first + n;
    if !r.forces.is_null() {
        // SAFETY: n triples.
        let f = unsafe { std::slice::from_raw_parts_mut(r.forces as *mut Vec3, n) };
        f.copy_from_slice(&out.forces[atoms.clone()]);
    }
    if !r.atom_energies.is_null() {
        // SAFETY: n doubles.
        unsafe { std::slice::from_raw_parts_mut(r.atom_energies, n) }.copy_from_slice(&out.atom_energies[atoms.clone()]);
    }
    if !r.atom_virials.is_null() {
        // SAFETY: n rows of 9.
        unsafe { std::slice::from_raw_parts_mut(r.atom_virials as *mut [f64; 9], n) }.copy_from_slice(&out.atom_virials[atoms]);
    }
}
