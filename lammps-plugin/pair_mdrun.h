/* pair_style mdrun: an mdrun model (mdrun train) as a LAMMPS pair style, through mdrun's C ABI
 * (include/mdrun.h, libmdrun.so).
 *
 *   plugin load  /path/to/mdrunplugin.so
 *   pair_style   mdrun potentials/water-schnet-mcgm-soft
 *   pair_coeff   * * O H
 *
 * Under domain decomposition each rank evaluates the model on its owned atoms and its ghosts:
 * the owned atoms' energies are exact, the forces fall on owned atoms and ghosts alike and LAMMPS
 * adds the ghosts' to their owners (newton on). MCGM's global cluster sums are made exact across
 * ranks with MPI_Allreduce. A model that needs the whole system (learned charges: their Coulomb
 * sum, Ewald in a periodic box; a distance-aware MCGM: its centroids) is evaluated on the whole
 * system gathered on every rank (replicated data: MPI_Allgatherv of positions, types and tags,
 * ordered by tag), each rank keeping its owned atoms' forces; no ghosts are used. Otherwise,
 * two ways to give the ghosts their environment:
 *   halo exchange (default): ghosts out to one cutoff; after every block the ghosts' features
 *     come from their owners (forward communication) and in the backward pass their gradients
 *     go back (reverse communication);
 *   halo full: ghosts out to the receptive field (blocks x cutoff), no communication inside the
 *     model; many more ghosts. */
#ifndef LMP_PAIR_MDRUN_H
#define LMP_PAIR_MDRUN_H

#include "pair.h"
#include "mdrun.h"

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairMdrun : public Pair {
 public:
  PairMdrun(class LAMMPS *);
  ~PairMdrun() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

 private:
  std::string model_path;
  bool exchange;    // halo exchange (true) or full (false)
  mdrun_potential *potential;
  // The rows being exchanged ([nall][width] floats) while the model runs.
  float *exchange_rows;
  int exchange_width;
  static void forward(float *rows, size_t width, void *self);
  static void reverse(float *rows, size_t width, void *self);
  std::vector<int> species_of_type;    // LAMMPS type (1-based) -> index into the loaded species
  std::vector<int32_t> types;
  std::vector<double> forces, atom_energies, atom_virials;
  bool whole;    // the model needs the whole system: gathered on every rank
  std::vector<int> counts, displs, order, rank_of_sorted;
  std::vector<tagint> tags;
  std::vector<double> gathered, sorted_positions;
  std::vector<int32_t> gathered_types, sorted_types;
  void compute_whole();
  void allocate();
};

}    // namespace LAMMPS_NS

#endif
