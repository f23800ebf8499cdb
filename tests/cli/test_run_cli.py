"""`aiida-mofmlp run STRUCTURE.cif`: bad options refused before anything is stored, --dry-run, and a real
foreground loop on a RASPA2 framework other than the demo's (MIL-53(Cr), 76 atoms)."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from aiida_mofmlp.cli import cli

FRAMEWORK = "MIL-53(Cr)ht"


@pytest.fixture
def cif(raspa_share_dir):
    return raspa_share_dir / "structures" / "cif" / f"{FRAMEWORK}.cif"


def _node_count() -> int:
    from aiida import orm

    return orm.QueryBuilder().append(orm.Node).count()


def _run(args, profile):
    return CliRunner().invoke(cli, ["run", *map(str, args), "--profile", profile], catch_exceptions=False)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--guest", "Xe"], "--guest 'Xe' is not a built-in guest; valid: CO2"),
        (["--loadings", "1,x"], "--loadings '1,x': 'x' is not a number"),
        (["--loadings", "0"], "--loadings '0': 0 is not positive"),
        (["--temperatures", "-5"], "--temperatures '-5': -5.0 is not positive"),
        (["--protocol", "quick"], "--protocol 'quick' is not known; valid: fast, balanced, stringent"),
        (["--foundation", "/no/such.model"], "--foundation '/no/such.model': no such file"),
        (["--sizes", "huge"], "--sizes: no packaged overrides 'huge'; available: demo"),
        (["--guest", "none", "--loadings", "2"], "--loadings given with --guest none"),
        (["--replay", "/no/replay.xyz"], "--replay '/no/replay.xyz': no such file"),
        (["--properties", "band gap"], "--properties: property 'band gap' is not known; valid: adsorption"),
        (["--guest", "none", "--properties", "adsorption"], "--properties: adsorption: needs a guest"),
        (["--properties", " , "], "--properties is empty; give some of adsorption, diffusion"),
        (["--overrides", "PROPERTY_OVERRIDES"], "--overrides: the 'properties' section must map chosen"),
    ],
    ids=[
        "guest",
        "loadings",
        "loading-zero",
        "temperature",
        "protocol",
        "foundation",
        "sizes",
        "empty",
        "replay",
        "property",
        "property-guest",
        "properties-empty",
        "property-overrides",
    ],
)
def test_bad_options_are_named_before_anything_is_stored(aiida_profile, cif, tmp_path, options, expected):
    if "PROPERTY_OVERRIDES" in options:  # overrides of a property not asked for
        path = tmp_path / "properties.yaml"
        path.write_text("properties:\n  phonons: {}\n")
        options = [str(path) if option == "PROPERTY_OVERRIDES" else option for option in options]
    before = _node_count()
    result = _run([cif, *options, "--dry-run"], aiida_profile.name)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert _node_count() == before


def test_bad_structure_and_missing_elements(aiida_profile, raspa_share_dir, tmp_path):
    broken = tmp_path / "broken.cif"
    broken.write_text("data_x\n_cell_length_a 10\nloop_\n_atom_site_label\n")
    result = _run([broken, "--dry-run"], aiida_profile.name)
    assert result.exit_code == 2 and "STRUCTURE broken.cif was not accepted" in result.output
    chlorine = raspa_share_dir / "structures" / "cif" / "ZIF-71.cif"  # Cl: not in the shipped foundation
    result = _run([chlorine, "--dry-run"], aiida_profile.name)
    assert result.exit_code == 2 and "but not Cl of ZIF-71.cif" in result.output


def test_dry_run_prints_the_resolved_settings_and_stores_nothing(aiida_profile, cif, tmp_path):
    overrides = tmp_path / "mine.yaml"
    overrides.write_text("parameters:\n  max_iterations: 5\n  selection_per_loading: 2\n")
    before = _node_count()
    result = _run(
        [
            cif,
            "--loadings",
            "1,3",
            "--temperatures",
            "300,400",
            "--labels",
            "xtb",
            "--sizes",
            "tiny",
            "--overrides",
            overrides,
            "--properties",
            "thermal expansion,phonons,thermal_expansion",
            "--dry-run",
        ],
        aiida_profile.name,
    )
    assert result.exit_code == 0, result.output
    assert _node_count() == before
    document = yaml.safe_load(result.output)
    assert document["structure"]["formula"] == "C32H20Cr4O20" and document["structure"]["atoms"] == 76
    params = document["parameters"]
    # options over the file over the packaged sizes over the protocol
    assert params["loadings"] == [1, 3] and params["temperatures"] == [300.0, 400.0]
    assert params["labelling"]["engine"] == "xtb"
    assert params["max_iterations"] == 5 and params["selection_per_loading"] == 2
    assert params["trust"] == {"lo": 1.0e-4, "hi": 10.0}  # from the tiny sizes
    assert "Cr" in document["foundation_species"] and document["replay"] == "shipped"
    assert document["properties"] == ["thermal_expansion", "phonons"]  # registry keys, each once


@pytest.mark.integration
def test_foreground_run_on_another_framework(aiida_profile, mofmlp_codes, cif, tmp_path):
    """The whole loop from the command line on MIL-53(Cr): one iteration at tiny sizes with xTB labels."""
    from aiida import orm

    from aiida_mofmlp.workflows.active_learning.workchain import ActiveLearningWorkChain

    overrides = tmp_path / "short.yaml"
    overrides.write_text(
        "parameters:\n  max_iterations: 1\n  gcmc: {pressures_bar: []}\n"
        "properties:\n  thermal_expansion:\n    temperatures: [150.0]\n"
        "    vdos: {temperature: 150.0, steps: 40, dump_interval: 2}\n"
        "    md: {md: {parameters: {steps: 60, dump_interval: 10, thermo_interval: 10}}}\n"
    )
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "model_9.model").write_text("an earlier run's model")
    options = [cif, "--sizes", "tiny", "--labels", "xtb", "--overrides", overrides, "--output-dir", out]
    options += ["--properties", "thermal expansion"]
    before = _node_count()
    result = _run(options, aiida_profile.name)
    assert result.exit_code == 2 and "is not empty" in result.output and "--overwrite" in result.output
    assert _node_count() == before  # refused before anything ran
    result = _run([*options, "--overwrite"], aiida_profile.name)
    assert result.exit_code == 0, result.output[-4000:]
    assert (out / "notes.txt").read_text() == "mine" and not (out / "model_9.model").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left
    assert f"CO2 in {FRAMEWORK}.cif (C32H20Cr4O20, 76 atoms)" in result.output
    assert "iter  training" in result.output and "Files in" in result.output
    node = (
        orm.QueryBuilder()
        .append(ActiveLearningWorkChain, filters={"label": f"{FRAMEWORK} + CO2 (fast)"})
        .order_by({ActiveLearningWorkChain: {"ctime": "desc"}})
        .first(flat=True)
    )
    assert node.is_finished and node.exit_status in (0, 410), node.exit_message
    assert node.inputs.structure.get_formula() == "C32H20Cr4O20"
    rows = node.outputs.iterations.get_dict()["rows"]
    assert [row["iteration"] for row in rows] == [0, 1]  # initial labels, then one iteration
    assert sum(row.get("n_labelled", 0) for row in rows) >= 1
    assert any(out.iterdir())
    (properties,) = [process for process in node.called if process.process_label == "PropertiesWorkChain"]
    assert properties.is_finished_ok, properties.exit_message  # --properties: the loop's last step
    assert properties.inputs.overrides.get_dict()["thermal_expansion"]["temperatures"] == [150.0]
    assert "lattice" in properties.outputs.thermal_expansion


def test_pickled_foundation_needs_trust_model(aiida_profile, cif, malicious_model):
    path, marker = malicious_model
    result = _run([cif, "--foundation", path, "--dry-run"], aiida_profile.name)
    assert result.exit_code == 2 and "--trust-model" in result.output and "safe form" in result.output
    assert not marker.exists()
