"""tools layer of aiida-mofmlp (see DESIGN.md)."""
