"""aiida-mofmlp: active learning of MACE potentials for metal-organic frameworks and their guests."""

__version__ = "0.1.0"
