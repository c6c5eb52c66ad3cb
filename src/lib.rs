//! mdrun: molecular dynamics with classical and machine-learned potentials.
//!
//! The flow: input (`system.toml`) → [`plan::Plan`] (validated, internal units) →
//! [`simulation::Simulation`] (system + potential + integrator + neighbour list) → step loop
//! with observers ([`run`]) → summary. Units are LAMMPS `metal` throughout ([`units`]).

/// mdrun's allocator (`memory`) for every build of the crate: the binary, the tests, and
/// `libmdrun.so` loaded into a host (LAMMPS, Python), whose Rust allocations it serves.
#[cfg(not(feature = "mimalloc"))]
#[global_allocator]
static ALLOCATOR: memory::Allocator = memory::Allocator::new();

/// `--features mimalloc`: mimalloc instead, for the comparison in BENCHMARKS.md.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod analysis;
pub mod blowup;
pub mod capi;
pub mod cell;
pub mod cli;
pub mod deck;
pub mod driver;
pub mod elements;
pub mod engine;
pub mod fuzzing;
pub mod gpu;
pub mod integrate;
pub mod io;
pub mod lattice;
pub mod learn;
pub mod library;
pub mod memory;
pub mod minimize;
pub mod ml;
pub mod limits;
pub mod neighbor;
pub mod outputs;
pub mod plan;
pub mod potential;
pub mod rng;
pub mod run;
pub mod signals;
pub mod simulation;
pub mod summary;
pub mod system;
pub mod thermo;
pub mod units;
pub mod velocities;
