"""CalcJobs: write an engine's input files, declare outputs and exit codes (base: ``EngineCalculation``)."""
