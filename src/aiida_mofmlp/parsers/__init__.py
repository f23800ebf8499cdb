"""Parser plugins: one per CalcJob with the same entry-point name (engine outputs, CP2K, RASPA); the
AiiDA-free text parsers they use live in ``parse_raw``. See docs/source/developer.md for the layers."""
