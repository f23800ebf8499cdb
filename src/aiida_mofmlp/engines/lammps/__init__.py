"""LAMMPS + MACE engine (``mofmlp-md``): NVT/NPT/NVE MD and hybrid MD-GCMC through ``fix external``."""
