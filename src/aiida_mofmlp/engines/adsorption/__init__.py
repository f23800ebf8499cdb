"""Adsorption engines: Widom insertion with a MACE model, heat of adsorption from MD energies (no AiiDA)."""
