"""User-facing tools on top of the work chains: CIF intake, provenance queries and lineage, dataset export,
plots, program versions."""
