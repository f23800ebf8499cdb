"""AiiDA-free analysis of MD trajectories: diffusion, structure, vibrations, lattice, integrity, pores.

Each module wraps a well-kept library (tidynamics, ase.neighborlist/geometry, scipy, pymbar, pyzeo) with
the physics decisions (which regime is linear, what counts as a broken bond, when melting happened):

* :mod:`.trajectory`: unwrapped positions from image flags, guest centres of mass, per-frame arrays;
* :mod:`.diffusion`: mean squared displacement, self-diffusion coefficient with its error and automatic
  linear regime, Arrhenius fit;
* :mod:`.structure`: radial distribution functions, first peaks, coordination numbers;
* :mod:`.vibrations`: vibrational density of states from the velocity autocorrelation;
* :mod:`.lattice`: lattice parameters over a run and thermal expansion coefficients;
* :mod:`.integrity`: per-frame bond graph and coordination against the starting framework, melting check;
* :mod:`.pores`: pore volume and surface area (Zeo++ through pyzeo).
"""
