"""MACE engines: fine-tuning (``mofmlp-train``), ensemble deviation (``mofmlp-deviation``), the offline
foundation builder (``mofmlp-foundation``) and their shared helpers."""
