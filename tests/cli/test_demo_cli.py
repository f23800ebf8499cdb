"""Cheap checks of `aiida-mofmlp demo` (the demo itself runs for minutes; its loop is tested in
tests/integration/test_active_learning.py through the same `demo_builder`)."""

from __future__ import annotations

import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_mofmlp.cli import cli
from aiida_mofmlp.cli.demo import demo_builder, demo_overrides, framework_cif
from aiida_mofmlp.workflows.active_learning.workchain import resolve_parameters, validate_parameters
from aiida_mofmlp.workflows.protocols.utils import packaged_overrides_path


def test_demo_help_lists_options():
    result = CliRunner().invoke(cli, ["demo", "--help"])
    assert result.exit_code == 0, result.output
    assert "--profile" in result.output and "--output-dir" in result.output
    assert "mofmlp-demo-output" in result.output


def test_demo_settings_are_valid_loop_parameters():
    overrides = demo_overrides()
    assert validate_parameters(orm.Dict(overrides["parameters"])) is None
    params = resolve_parameters(overrides["parameters"])
    assert params["loadings"] == [1]
    assert params["trust"]["lo"] < params["trust"]["hi"]
    assert overrides["mace"]["train"]["train"]["parameters"]["E0s"] == "average"


def test_demo_overrides_files_and_extra_settings():
    assert demo_overrides() == demo_overrides(packaged_overrides_path("demo"))
    tiny = demo_overrides("tiny", extra={"parameters": {"max_iterations": 4}})
    assert tiny["parameters"]["max_iterations"] == 4
    assert tiny["parameters"]["trust"] == {"lo": 1.0e-4, "hi": 10.0}  # the rest of tiny.yaml is kept
    assert validate_parameters(orm.Dict(tiny["parameters"])) is None
    with pytest.raises(ValueError, match="available: demo, tiny"):
        demo_overrides("huge")


def test_demo_framework_is_in_raspas_library():
    path = framework_cif()
    assert path.is_file() and path.stem == "ZnBDCdabco"


@pytest.mark.parametrize("name", ["demo", "tiny"])
def test_demo_builders_are_unchanged(name, mofmlp_codes, serialize_builder, data_regression, tmp_path):
    """The builders from overrides/demo.yaml and tiny.yaml equal those of the former Python settings.

    The reference files were computed with the settings dicts (``DEMO_SETTINGS``, ``TINY_AL_SETTINGS``)
    before they became overrides files, with ``parameters`` resolved over the loop's defaults (the builder
    now writes every loop setting out). Two entries came in with LabellingWorkChain's protocol builder:
    ``labelling.guest_box`` (its port default, 12.0) and the ``mofmlp.cp2k`` parser.
    """
    builder = demo_builder(mofmlp_codes, tmp_path, name)
    data_regression.check(serialize_builder(builder), basename=f"{name}_builder")
