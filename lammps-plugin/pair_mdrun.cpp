#include "pair_mdrun.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neighbor.h"

#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <numeric>

using namespace LAMMPS_NS;

namespace {

/* mdrun's reduction hook: MCGM's per-cluster sums added up over every rank. */
void allreduce_world(double *buffer, size_t len, void *context)
{
  MPI_Comm world = *static_cast<MPI_Comm *>(context);
  MPI_Allreduce(MPI_IN_PLACE, buffer, static_cast<int>(len), MPI_DOUBLE, MPI_SUM, world);
}

/* Adds mdrun's row-major 3x3 virial `w` to LAMMPS's six components (xx yy zz xy xz yz). */
void add_virial(double *six, const double *w)
{
  six[0] += w[0];
  six[1] += w[4];
  six[2] += w[8];
  six[3] += w[1];
  six[4] += w[2];
  six[5] += w[5];
}

}    // namespace

PairMdrun::PairMdrun(LAMMPS *lmp) :
    Pair(lmp), exchange(true), potential(nullptr), exchange_rows(nullptr), exchange_width(0), whole(false)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  // The model gives the virial itself (its edges' terms, ghosts included).
  no_virial_fdotr_compute = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
}

PairMdrun::~PairMdrun()
{
  mdrun_potential_free(potential);
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairMdrun::allocate()
{
  allocated = 1;
  int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
}

/* pair_style mdrun MODEL [halo exchange|full] */
void PairMdrun::settings(int narg, char **arg)
{
  if (narg != 1 && !(narg == 3 && strcmp(arg[1], "halo") == 0))
    error->all(FLERR, "Illegal pair_style mdrun command: expected pair_style mdrun MODEL [halo exchange|full] (MODEL: a folder or model.json written by mdrun train)");
  model_path = arg[0];
  exchange = true;
  if (narg == 3) {
    if (strcmp(arg[2], "full") == 0) exchange = false;
    else if (strcmp(arg[2], "exchange") != 0)
      error->all(FLERR, "Illegal pair_style mdrun command: halo {}: expected exchange or full", arg[2]);
  }
}

/* pair_coeff * * ELEMENT... (one element symbol per atom type) */
void PairMdrun::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  int ntypes = atom->ntypes;
  if (narg != 2 + ntypes || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "Incorrect args for pair_style mdrun: expected pair_coeff * * followed by one element symbol per atom type ({} types)", ntypes);
  // Each distinct element once, in order of first use; types map onto them.
  std::vector<std::string> elements;
  species_of_type.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; t++) {
    std::string e = arg[1 + t];
    int k = 0;
    while (k < (int) elements.size() && elements[k] != e) k++;
    if (k == (int) elements.size()) elements.push_back(e);
    species_of_type[t] = k;
  }
  std::string species;
  for (auto &e : elements) species += e + " ";
  mdrun_potential_free(potential);
  // One thread per rank unless LAMMPS was given more (-pk omp N / OMP_NUM_THREADS).
  potential = mdrun_potential_load(model_path.c_str(), species.c_str(), comm->nthreads > 0 ? comm->nthreads : 1);
  if (!potential) error->all(FLERR, "pair_style mdrun: {}", mdrun_last_error());
  whole = mdrun_potential_needs_whole_system(potential) != 0;
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;
  if (comm->me == 0) {
    char text[1024];
    mdrun_potential_describe(potential, text, sizeof text);
    if (whole)
      utils::logmesg(lmp, "pair_style mdrun: {}\n  the model needs the whole system (learned charges or a distance-aware MCGM): all atoms gathered on every rank each step\n", text);
    else if (exchange)
      utils::logmesg(lmp, "pair_style mdrun: {}\n  ghosts to one cutoff ({} A), their features exchanged after each block\n", text, mdrun_potential_cutoff(potential));
    else
      utils::logmesg(lmp, "pair_style mdrun: {}\n  ghosts to the receptive field ({} A)\n", text, mdrun_potential_receptive_field(potential));
  }
}

void PairMdrun::init_style()
{
  if (force->newton_pair == 0)
    error->all(FLERR, "pair_style mdrun requires newton pair on (the forces on ghost atoms go back to their owners)");
  if (!potential) error->all(FLERR, "pair_style mdrun: pair_coeff * * ELEMENT... must come before the run");
  // No neighbour list: the model builds its own graph from owned + ghost atoms.
  comm_forward = comm_reverse = (exchange && !whole) ? (int) mdrun_potential_exchange_width(potential) : 0;
  if (whole && atom->tag_enable == 0)
    error->all(FLERR, "pair_style mdrun: {} needs atom IDs (atom_modify id yes) to gather the whole system in one order", model_path);
}

/* The pair cutoff LAMMPS sends ghosts to: one cutoff when the ghosts' features are exchanged
   between blocks, else the model's receptive field. */
double PairMdrun::init_one(int, int)
{
  // The whole system is gathered: ghosts only need what LAMMPS's own bookkeeping wants.
  return (exchange || whole) ? mdrun_potential_cutoff(potential) : mdrun_potential_receptive_field(potential);
}

/* mdrun's exchange hooks: LAMMPS's own forward and reverse communication of `width` floats per
   atom, through the pack/unpack methods below. */
void PairMdrun::forward(float *rows, size_t width, void *self)
{
  auto *pair = static_cast<PairMdrun *>(self);
  pair->exchange_rows = rows;
  pair->exchange_width = (int) width;
  pair->comm->forward_comm(pair, (int) width);
}

void PairMdrun::reverse(float *rows, size_t width, void *self)
{
  auto *pair = static_cast<PairMdrun *>(self);
  pair->exchange_rows = rows;
  pair->exchange_width = (int) width;
  pair->comm->reverse_comm(pair, (int) width);
}

int PairMdrun::pack_forward_comm(int n, int *list, double *buf, int, int *)
{
  int m = 0;
  for (int i = 0; i < n; i++) {
    const float *row = exchange_rows + (size_t) list[i] * exchange_width;
    for (int k = 0; k < exchange_width; k++) buf[m++] = row[k];
  }
  return m;
}

void PairMdrun::unpack_forward_comm(int n, int first, double *buf)
{
  int m = 0;
  for (int i = first; i < first + n; i++) {
    float *row = exchange_rows + (size_t) i * exchange_width;
    for (int k = 0; k < exchange_width; k++) row[k] = (float) buf[m++];
  }
}

int PairMdrun::pack_reverse_comm(int n, int first, double *buf)
{
  int m = 0;
  for (int i = first; i < first + n; i++) {
    const float *row = exchange_rows + (size_t) i * exchange_width;
    for (int k = 0; k < exchange_width; k++) buf[m++] = row[k];
  }
  return m;
}

void PairMdrun::unpack_reverse_comm(int n, int *list, double *buf)
{
  int m = 0;
  for (int i = 0; i < n; i++) {
    float *row = exchange_rows + (size_t) list[i] * exchange_width;
    for (int k = 0; k < exchange_width; k++) row[k] += (float) buf[m++];
  }
}

void PairMdrun::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (whole) {
    compute_whole();
    return;
  }
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  types.resize(nall);
  for (int i = 0; i < nall; i++) types[i] = species_of_type[atom->type[i]];
  forces.resize(3 * (size_t) nall);

  mdrun_structure s = {};
  s.n_atoms = nall;
  s.n_owned = nlocal;
  s.positions = nall > 0 ? &atom->x[0][0] : nullptr;
  s.types = types.data();
  s.cell = nullptr;    // the ghosts are explicit images: open boundaries
  MPI_Comm comm_world = world;
  if (comm->nprocs > 1) {
    s.reduce = allreduce_world;
    s.reduce_context = &comm_world;
  }
  // Between reneighbourings LAMMPS keeps its atoms (and their order): mdrun may reuse its list.
  s.same_atoms = neighbor->ago > 0 ? 1 : -1;
  if (exchange) {
    s.exchange_forward = forward;
    s.exchange_reverse = reverse;
    s.exchange_context = this;
  }
  mdrun_results r = {};
  r.forces = forces.data();
  if (eflag_atom) {
    atom_energies.resize(nall);
    r.atom_energies = atom_energies.data();
  }
  if (vflag_atom) {
    atom_virials.resize(9 * (size_t) nall);
    r.atom_virials = atom_virials.data();
  }
  if (mdrun_potential_evaluate(potential, &s, &r) != 0)
    error->one(FLERR, "pair_style mdrun: {}", mdrun_last_error());

  double **f = atom->f;
  for (int i = 0; i < nall; i++) {
    f[i][0] += forces[3 * i];
    f[i][1] += forces[3 * i + 1];
    f[i][2] += forces[3 * i + 2];
  }
  if (eflag_global) eng_vdwl += r.energy;
  if (vflag_global) add_virial(virial, r.virial);
  if (eflag_atom)
    for (int i = 0; i < nall; i++) eatom[i] += atom_energies[i];
  if (vflag_atom)
    for (int i = 0; i < nall; i++) add_virial(vatom[i], &atom_virials[9 * (size_t) i]);
}

/* Replicated data: every rank gathers all atoms (positions, mdrun types, tags), orders them by
   tag so that every rank and every step sees the same system in the same order, evaluates it
   whole in LAMMPS's box, and keeps its owned atoms' forces. Energy and virial are counted once
   (rank 0). */
void PairMdrun::compute_whole()
{
  // Every rank has the same flags: all of them stop here together.
  if (eflag_atom || vflag_atom)
    error->all(FLERR, "pair_style mdrun: {} needs the whole system (learned charges or a distance-aware MCGM), whose long-range energy is not split per atom: compute pe/atom and stress/atom are not available with it", model_path);
  const int nlocal = atom->nlocal;
  const int nprocs = comm->nprocs;
  counts.assign(nprocs, 0);
  displs.assign(nprocs, 0);
  MPI_Allgather(&nlocal, 1, MPI_INT, counts.data(), 1, MPI_INT, world);
  int ntotal = 0;
  for (int p = 0; p < nprocs; p++) {
    displs[p] = ntotal;
    ntotal += counts[p];
  }
  std::vector<tagint> local_tags(atom->tag, atom->tag + nlocal);
  tags.resize(ntotal);
  MPI_Allgatherv(local_tags.data(), nlocal, MPI_LMP_TAGINT, tags.data(), counts.data(), displs.data(), MPI_LMP_TAGINT, world);
  std::vector<int32_t> local_types(nlocal);
  for (int i = 0; i < nlocal; i++) local_types[i] = species_of_type[atom->type[i]];
  gathered_types.resize(ntotal);
  MPI_Allgatherv(local_types.data(), nlocal, MPI_INT, gathered_types.data(), counts.data(), displs.data(), MPI_INT, world);
  std::vector<int> counts3(nprocs), displs3(nprocs);
  for (int p = 0; p < nprocs; p++) {
    counts3[p] = 3 * counts[p];
    displs3[p] = 3 * displs[p];
  }
  gathered.resize(3 * (size_t) ntotal);
  MPI_Allgatherv(nlocal > 0 ? &atom->x[0][0] : nullptr, 3 * nlocal, MPI_DOUBLE, gathered.data(), counts3.data(), displs3.data(), MPI_DOUBLE, world);
  order.resize(ntotal);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return tags[a] < tags[b]; });
  // rank_of_sorted[g]: where gathered atom g sits in the sorted system.
  rank_of_sorted.resize(ntotal);
  sorted_positions.resize(3 * (size_t) ntotal);
  sorted_types.resize(ntotal);
  for (int k = 0; k < ntotal; k++) {
    const int g = order[k];
    rank_of_sorted[g] = k;
    for (int d = 0; d < 3; d++) sorted_positions[3 * (size_t) k + d] = gathered[3 * (size_t) g + d] - domain->boxlo[d];
    sorted_types[k] = gathered_types[g];
  }
  double charge = 0.0;
  if (atom->q_flag)
    for (int i = 0; i < nlocal; i++) charge += atom->q[i];
  MPI_Allreduce(MPI_IN_PLACE, &charge, 1, MPI_DOUBLE, MPI_SUM, world);

  // LAMMPS's box as cell vectors (rows): a = (xprd, 0, 0), b = (xy, yprd, 0), c = (xz, yz, zprd).
  double cell[9] = {domain->xprd, 0.0, 0.0, domain->xy, domain->yprd, 0.0, domain->xz, domain->yz, domain->zprd};
  const bool any_periodic = domain->xperiodic || domain->yperiodic || domain->zperiodic;
  mdrun_structure s = {};
  s.n_atoms = ntotal;
  s.n_owned = ntotal;
  s.positions = ntotal > 0 ? sorted_positions.data() : nullptr;
  s.types = sorted_types.data();
  s.cell = any_periodic ? cell : nullptr;
  s.periodic[0] = domain->xperiodic;
  s.periodic[1] = domain->yperiodic;
  s.periodic[2] = domain->zperiodic;
  s.charge = charge;
  // Same count, types and box and small moves: mdrun may keep its neighbour list.
  s.same_atoms = 0;
  forces.resize(3 * (size_t) ntotal);
  mdrun_results r = {};
  r.forces = forces.data();
  // Every rank evaluated the same system, so all fail together: error->all lets rank 0 print the
  // reason and every rank stop cleanly (error->one on all of them races MPI_Abort against the
  // message).
  if (mdrun_potential_evaluate(potential, &s, &r) != 0)
    error->all(FLERR, "pair_style mdrun: {}", mdrun_last_error());

  double **f = atom->f;
  const int first = displs[comm->me];
  for (int i = 0; i < nlocal; i++) {
    const size_t k = rank_of_sorted[first + i];
    f[i][0] += forces[3 * k];
    f[i][1] += forces[3 * k + 1];
    f[i][2] += forces[3 * k + 2];
  }
  if (comm->me != 0) return;
  if (eflag_global) eng_vdwl += r.energy;
  if (vflag_global) add_virial(virial, r.virial);
}
