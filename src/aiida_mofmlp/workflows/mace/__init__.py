"""MACE work chains: fine-tuning with restarts, ensembles, ensemble deviation."""
