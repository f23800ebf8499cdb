"""Data files shipped with aiida-mofmlp (read them through :mod:`aiida_mofmlp.common.resources`)."""
