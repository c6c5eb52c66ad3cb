/* mdrun's C ABI (src/capi.rs): load a learned potential and evaluate energies, forces, virials
 * and per-atom energies and virials of whole structures or of one rank's part of a
 * domain-decomposed system. Used by the LAMMPS plugin (lammps-plugin/) and the Python package
 * (python/); link against libmdrun.so (cargo build --release --lib).
 *
 * Every function that can fail returns 0, or -1 (NULL for mdrun_potential_load) with the reason
 * in mdrun_last_error(). Arrays are row-major doubles owned by the caller. Units: Å, eV, e. */
#ifndef MDRUN_H
#define MDRUN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mdrun_potential mdrun_potential;

/* Adds len doubles up over every rank, in place (MPI_Allreduce with MPI_SUM). */
typedef void (*mdrun_reduce_fn)(double *buffer, size_t len, void *context);
/* rows: [n_atoms][width] floats, owned atoms first. Forward: every ghost row takes its owner's
 * row. Reverse: every owner row adds its ghosts' rows. */
typedef void (*mdrun_exchange_fn)(float *rows, size_t width, void *context);

typedef struct {
  size_t n_atoms;
  size_t n_owned;          /* atoms 0..n_owned count in the energy; the rest are ghosts */
  const double *positions; /* [n_atoms][3] */
  const int32_t *types;    /* [n_atoms], 0-based index into the species given at load */
  const double *cell;      /* [3][3], cell vectors as rows; NULL: open */
  int32_t periodic[3];
  double charge;           /* total charge (models with learned charges) */
  mdrun_reduce_fn reduce;  /* NULL: a whole system; else every rank calls together */
  void *reduce_context;
  /* NULL: the ghosts reach the receptive field (blocks x cutoff). Set (both): they reach one
   * cutoff and are refreshed between blocks through these. */
  mdrun_exchange_fn exchange_forward;
  mdrun_exchange_fn exchange_reverse;
  void *exchange_context;
  /* 1: the same atoms in the same order as the previous call (LAMMPS between reneighbourings);
   * 0: unknown (same count, types, cell and small moves count as the same); -1: not the same.
   * Lets a call reuse the previous call's neighbour list. */
  int32_t same_atoms;
} mdrun_structure;

typedef struct {
  double energy;           /* of the owned atoms */
  double virial[9];        /* row-major, sum of r (x) f */
  double *forces;          /* [n_atoms][3], ghosts included; required */
  double *atom_energies;   /* [n_atoms] or NULL */
  double *atom_virials;    /* [n_atoms][9] or NULL */
} mdrun_results;

const char *mdrun_last_error(void);
const char *mdrun_version(void);

/* species: element symbols, space-separated, type 0 first. threads: the evaluation's thread
 * pool, sized by the first load in a process (0: all cores). */
mdrun_potential *mdrun_potential_load(const char *path, const char *species, size_t threads);
void mdrun_potential_free(mdrun_potential *potential);
double mdrun_potential_cutoff(const mdrun_potential *potential);
double mdrun_potential_receptive_field(const mdrun_potential *potential); /* blocks x cutoff */
size_t mdrun_potential_exchange_width(const mdrun_potential *potential);  /* F, or 3F (PaiNN) */
int mdrun_potential_is_long_range(const mdrun_potential *potential);
/* 1: whole structures only (learned charges, a distance-aware MCGM): gather the system. */
int mdrun_potential_needs_whole_system(const mdrun_potential *potential);
size_t mdrun_potential_describe(const mdrun_potential *potential, char *buffer, size_t len);

int mdrun_potential_evaluate(mdrun_potential *potential, const mdrun_structure *structure,
                             mdrun_results *results);
int mdrun_potential_evaluate_batch(mdrun_potential *potential, const mdrun_structure *structures,
                                   mdrun_results *results, size_t count);

#ifdef __cplusplus
}
#endif
#endif
