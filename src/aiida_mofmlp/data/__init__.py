"""Data node types of aiida-mofmlp."""

from .guest import GuestMoleculeData
from .mace_model import MaceModelData
from .structure_set import StructureSetData

__all__ = ["GuestMoleculeData", "MaceModelData", "StructureSetData"]
