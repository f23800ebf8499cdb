"""IsothermWorkChain input validation (no RASPA run: it fails before any job is submitted)."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mofmlp.workflows.isotherm import IsothermWorkChain


def test_element_without_uff_parameters_is_rejected_before_any_job(require_code):
    """Input validation names the element and how to supply parameters; nothing is submitted."""
    from ase import Atoms

    atoms = Atoms("UO2", positions=[[0, 0, 0], [1.8, 0, 0], [0, 1.8, 0]], cell=[8, 8, 8], pbc=True)
    builder = IsothermWorkChain.get_builder_from_protocol(
        require_code("raspa"), orm.StructureData(ase=atoms), "CO2", protocol="fast"
    )
    with pytest.raises(ValueError, match=r"structure: no UFF .* U; give them in `force_field_parameters`"):
        run_get_node(builder)
    builder.parameters = orm.Dict({**builder.parameters.get_dict(), "framework_charges": "eqeq"})
    with pytest.raises(ValueError, match="pyeqeq"):
        run_get_node(builder)


def test_cif_charges_need_a_cif(require_code):
    from ase import Atoms

    atoms = Atoms("ZnO", positions=[[0, 0, 0], [2.0, 0, 0]], cell=[8, 8, 8], pbc=True)
    builder = IsothermWorkChain.get_builder_from_protocol(
        require_code("raspa"), orm.StructureData(ase=atoms), "CO2", protocol="balanced"
    )
    # the protocol's "cif" charges fall back to "none" for a StructureData ...
    assert builder.parameters["framework_charges"] == "none"
    builder.parameters = orm.Dict({**builder.parameters.get_dict(), "framework_charges": "cif"})
    # ... and asking for them explicitly is refused
    with pytest.raises(ValueError, match="CifData"):
        run_get_node(builder)


def test_cif_without_charges_is_refused_for_cif_charges(require_code, tmp_path):
    from ase import Atoms
    from ase.io import write

    path = tmp_path / "nocharge.cif"
    write(path, Atoms("ZnO", positions=[[0, 0, 0], [2.0, 0, 0]], cell=[8, 8, 8], pbc=True))
    builder = IsothermWorkChain.get_builder_from_protocol(
        require_code("raspa"), orm.CifData(file=str(path)), "CO2", protocol="balanced"
    )
    assert builder.parameters["framework_charges"] == "cif"
    with pytest.raises(ValueError, match="no _atom_site_charge"):
        run_get_node(builder)
