"""xTB labelling engine (``mofmlp-xtb``): GFN1-/GFN2-xTB energies, forces and stress of periodic
frames, in-process with tblite."""
