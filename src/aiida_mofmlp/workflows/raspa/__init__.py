"""RASPA work chains: Widom, GCMC isotherms and guest snapshots, with their force fields."""
