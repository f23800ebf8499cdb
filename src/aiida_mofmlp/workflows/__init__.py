"""Work chains, one subpackage per code or concern (``cp2k``, ``raspa``, ``mace``, ``lammps``,
``selection``, ``active_learning``), their calcfunctions (``functions``) and protocol files (``protocols``).
See docs/source/developer.md for the layers."""
