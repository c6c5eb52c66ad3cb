/* pair_style mdrun: an mdrun model (mdrun train) as a LAMMPS pair style, through mdrun's C ABI
 * (include/mdrun.h, libmdrun.so).
 *
 *   plugin load  /path/to/mdrunplugin.so
 *   pair_style   mdrun potentials/water-schnet-mcgm-soft
 *   pair_coeff   * * O H
 *
 * Under domain decomposition each rank evaluates the model on its owned atoms and the ghosts
 * LAMMPS sends it out to the model's receptive field (blocks x cutoff, the pair cutoff this style
 * reports): the owned atoms' energies are exact, the forces fall on owned atoms and ghosts alike
 * and LAMMPS adds the ghosts' to their owners (newton on). MCGM's global cluster sums are made
 * exact across ranks with MPI_Allreduce. */
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

 private:
  std::string model_path;
  mdrun_potential *potential;
  std::vector<int> species_of_type;    // LAMMPS type (1-based) -> index into the loaded species
  std::vector<int32_t> types;
  std::vector<double> forces, atom_energies, atom_virials;
  void allocate();
};

}    // namespace LAMMPS_NS

#endif
