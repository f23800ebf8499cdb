"""``mofmlp-phonons``: relaxation, harmonic phonons, bulk modulus, quasi-harmonic expansion and model-card
tasks of one structure with one MACE model (no AiiDA imports)."""
