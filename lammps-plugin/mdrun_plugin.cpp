/* Registers pair_style mdrun with LAMMPS when `plugin load mdrunplugin.so` runs. */
#include "plugin_abi.h"
#include "lammps.h"
#include "pair_mdrun.h"

using namespace LAMMPS_NS;

static Pair *make_pair_mdrun(LAMMPS *lmp)
{
  return new PairMdrun(lmp);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  plugin_entry entry;
  entry.version = static_cast<LAMMPS *>(lmp)->version;    // built against this very LAMMPS
  entry.style = "pair";
  entry.name = "mdrun";
  entry.info = "mdrun learned potentials (SchNet, PaiNN, MCGM) via libmdrun";
  entry.author = "mdrun";
  entry.creator.v1 = (plugin_factory1 *) &make_pair_mdrun;
  entry.handle = handle;
  ((plugin_register_fn) regfunc)(&entry, lmp);
}
