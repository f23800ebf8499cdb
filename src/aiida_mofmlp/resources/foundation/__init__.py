"""Small MOF foundation MACE model (a stand-in for MACE-MP; see card.md and docs/source/data.md)."""
