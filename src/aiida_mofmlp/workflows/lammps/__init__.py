"""LAMMPS work chains: MD and MD-GCMC with restart handlers."""
