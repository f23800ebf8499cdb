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
    assert "mofmlp-demo-output" in result.output and "--model-card" in result.output


def test_demo_settings_are_valid_loop_parameters():
    overrides = demo_overrides()
    assert validate_parameters(orm.Dict(overrides["parameters"])) is None
    params = resolve_parameters(overrides["parameters"])
    assert params["loadings"] == [1]
    assert params["trust"]["lo"] < params["trust"]["hi"]
    assert overrides["mace"]["train"]["train"]["parameters"]["mode"] == "multihead"
    assert params["labelling"]["engine"] == "xtb"


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
def test_demo_builders(name, mofmlp_codes, serialize_builder, data_regression, tmp_path):
    """The builders of overrides/demo.yaml and tiny.yaml: shipped foundation, its replay set, the labeller.

    The references hold every input the loop gets (``parameters`` resolved over the loop's defaults); they
    change only when the demo's or the tests' settings change on purpose.
    """
    builder = demo_builder(mofmlp_codes, tmp_path, name)
    data = serialize_builder(builder)
    assert builder.foundation_model.base.attributes.get("source") == "aiida-mofmlp small MOF foundation"
    assert len(builder.training.train.train.replay_set) > 0  # the shipped replay sample: multihead for real
    data_regression.check(data, basename=f"{name}_builder")


def test_model_card_table_has_a_row_per_quantity_and_a_column_per_model():
    from aiida_mofmlp.cli.demo import card_table

    card = {
        "models": {
            "fine_tuned": {"bulk_modulus": 12.5, "npt_stable": True},
            "foundation": {"bulk_modulus": None},
        },
        "quantities": ["bulk_modulus", "npt_stable"],
        "units": {"bulk_modulus": "GPa", "npt_stable": ""},
    }
    header, bulk, stable = card_table(card)
    assert header.split()[1:] == ["fine_tuned", "foundation", "unit"]
    assert bulk.split() == ["bulk_modulus", "12.5", "-", "GPa"]
    assert stable.split() == ["npt_stable", "True", "-"]
    from aiida_mofmlp.workflows.functions.phonons import reference_columns

    table = {
        "reference_method": "GFN1-xTB",
        "rows": [
            {
                "property": "volume",
                "model": label,
                "reference": 100.0,
                "value": value,
                "unit": "Angstrom^3",
                "tolerance": 1.0,
                "passed": passed,
            }
            for label, value, passed in (
                ("fine_tuned", 100.5, True),
                ("foundation", 104.0, False),
                ("ensemble", 102.25, False),
            )
        ],
    }
    card["reference_check"] = reference_columns(table)
    against, volume = card_table(card)[3:]
    assert against.split()[:3] == ["against", "GFN1-xTB", "reference"]
    assert volume.split() == ["volume", "100", "100.5", "104*", "Angstrom^3", "(1)"]  # * outside tolerance


def test_reference_check_lines_show_each_iterations_check():
    from aiida_mofmlp.cli.demo import reference_check_lines

    check = {"property": "bulk_modulus", "reference": 6.05, "value": 8.72, "difference": 2.67, "unit": "GPa"}
    rows = [
        {"iteration": 1},
        {"iteration": 2, "reference_check": [{**check, "passed": False}], "n_reference_frames": 7},
        {
            "iteration": 3,
            "reference_check": [{**check, "value": 6.2, "difference": 0.15, "passed": True, "spread": 0.4}],
        },
    ]
    lines = reference_check_lines(rows)
    assert lines[2].split() == ["2", "bulk_modulus", "6.05", "8.72", "2.67", "GPa", "FAIL"]
    assert "7 reference frame(s) sent to labelling" in lines[3]
    assert lines[4].split()[6] == "pass" and lines[4].endswith("(models' spread 0.4)")
    assert reference_check_lines([{"iteration": 1}]) == []


def test_orchestration_never_imports_mace_or_torch():
    """Every work chain, CalcJob, parser and data type of the plugin and the app's models load without mace
    (which switches every default ``torch.load`` to unpickling) and without torch: models are only opened
    in engine jobs or, in the safe form, on demand."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "for group in ('aiida.workflows', 'aiida.calculations', 'aiida.parsers', 'aiida.data'):\n"
        "    for ep in entry_points(group=group):\n"
        "        if ep.name.startswith('mofmlp'):\n"
        "            ep.load()\n"
        "import aiida_mofmlp.cli.demo, aiida_mofmlp.cli.run, aiida_mofmlp.app.configure.model\n"
        "import aiida_mofmlp.app.results.model, aiida_mofmlp.app.submit.model\n"
        "print(sorted(m for m in ('mace', 'torch', 'e3nn') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
