"""AiiDA-free text parsers of the external codes' outputs (CP2K, RASPA), used by the parser plugins."""
