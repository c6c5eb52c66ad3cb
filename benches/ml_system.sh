# Sourced by the benchmarks that run MD with a trained model: the system.toml they share.
#   ml_system_toml STRUCTURE MODEL STEPS REPEAT [RUN LINE ...]
# prints [structure] (with `repeat = [REPEAT]` unless REPEAT is empty), velocities drawn at
# 300 K (seed 1), the model, velocity Verlet at 0.25 fs and [run] with STEPS and each RUN LINE;
# the caller adds its own [output].
ml_system_toml() {
  local structure=$1 model=$2 steps=$3 repeat=$4
  shift 4
  printf '[structure]\nfile = "%s"\n' "$structure"
  [ -n "$repeat" ] && printf 'repeat = [%s]\n' "$repeat"
  printf '[velocities]\nsource = "maxwell-boltzmann"\ntemperature = "300 K"\nseed = 1\n'
  printf '[potential]\ntype = "ml"\nmodel = "%s"\n' "$model"
  printf '[integrator]\ntype = "verlet"\ntimestep = "0.25 fs"\n'
  printf '[run]\nsteps = %s\n' "$steps"
  for line in "$@"; do
    printf '%s\n' "$line"
  done
}
