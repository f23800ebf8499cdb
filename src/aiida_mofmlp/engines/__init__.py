"""AiiDA-free programs that do the heavy work on a compute node (console scripts with a JSON/YAML input
and files out): MACE training, deviation and the offline foundation model (``mace``), LAMMPS + MACE MD and
MD-GCMC (``lammps``), structure selection (``selection``). They import only ``aiida_mofmlp.common``."""
