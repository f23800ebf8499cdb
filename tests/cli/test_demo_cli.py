"""Cheap checks of `aiida-mofmlp demo` (the demo itself runs for minutes; its loop is tested in
tests/integration/test_active_learning.py through the same `demo_builder`)."""

from __future__ import annotations

from aiida import orm
from click.testing import CliRunner

from aiida_mofmlp.cli import cli
from aiida_mofmlp.cli.demo import DEMO_SETTINGS, demo_overrides, framework_cif
from aiida_mofmlp.workflows.active_learning import resolve_parameters, validate_parameters


def test_demo_help_lists_options():
    result = CliRunner().invoke(cli, ["demo", "--help"])
    assert result.exit_code == 0, result.output
    assert "--profile" in result.output and "--output-dir" in result.output
    assert "mofmlp-demo-output" in result.output


def test_demo_settings_are_valid_loop_parameters():
    overrides = demo_overrides(DEMO_SETTINGS)
    assert validate_parameters(orm.Dict(overrides["parameters"])) is None
    params = resolve_parameters(overrides["parameters"])
    assert params["loadings"] == DEMO_SETTINGS["loadings"]
    assert params["trust"]["lo"] < params["trust"]["hi"]
    assert overrides["mace"]["E0s"] == "average"


def test_demo_framework_is_in_raspas_library():
    path = framework_cif()
    assert path.is_file() and path.stem == "ZnBDCdabco"
