"""workflows layer of aiida-mofmlp (see DESIGN.md)."""
