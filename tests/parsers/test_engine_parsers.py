"""The four engine parsers on stored real engine outputs (see data/generate_outputs.py).

Each stored run is parsed through a fake finished CalcJobNode: a finished run gives the outputs; an engine
that rejected its input gives 302; a missing output file 300; a corrupt one 301; the engine's own failure
states give the CalcJob's physics exit codes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from aiida_mofmlp.parsers.base import EngineParser
from aiida_mofmlp.parsers.deviation import DeviationParser
from aiida_mofmlp.parsers.lammps_md import LammpsMdParser
from aiida_mofmlp.parsers.mace_train import MaceTrainParser
from aiida_mofmlp.parsers.select import SelectParser

DATA = Path(__file__).parent / "data"
#: not an npz: the first bytes of a zip archive, then garbage
CORRUPT_NPZ = b"PK\x03\x04 truncated archive"
NO_ERROR_STDERR = "Traceback (most recent call last):\nMemoryError: out of memory\n"


def stored(engine: str, run: str = "ok", changes: dict[str, str | bytes | None] | None = None) -> dict:
    """The retrieved files of stored run ``engine/run``; ``changes`` replace (None: remove) files."""
    files = {path.name: path.read_bytes() for path in sorted((DATA / engine / run).iterdir())}
    for name, content in (changes or {}).items():
        if content is None:
            files.pop(name, None)
        else:
            files[name] = content if isinstance(content, bytes) else content.encode()
    return files


def edited_json(engine: str, name: str, **values) -> str:
    """Stored JSON file ``engine/ok/name`` with top-level ``values`` changed."""
    return json.dumps({**json.loads((DATA / engine / "ok" / name).read_text()), **values})


@pytest.fixture
def parse(generate_calc_job_node):
    """Parse ``retrieved`` files as the output of a ``entry_point`` CalcJob; returns (outputs, calc node)."""

    def _parse(entry_point: str, parser_class, retrieved: dict, inputs: dict | None = None):
        node = generate_calc_job_node(entry_point, exit_status=None, inputs=inputs, retrieved=retrieved)
        outputs, calcfunction = parser_class.parse_from_node(node, store_provenance=False)
        return outputs, calcfunction

    return _parse


def assert_exit(calcfunction, status: int, *fragments: str) -> None:
    assert calcfunction.exit_status == status, calcfunction.exit_message
    for fragment in fragments:
        assert fragment in calcfunction.exit_message


# --- base class ------------------------------------------------------------------------------------


def test_error_patterns_default_and_override():
    assert DeviationParser.error_patterns() == {"mofmlp-deviation: error:": "ERROR_INVALID_INPUT"}
    assert SelectParser.error_patterns() == {"mofmlp-select: error:": "ERROR_INVALID_INPUT"}
    assert MaceTrainParser.error_patterns() == {"mofmlp-train: error:": "ERROR_INVALID_INPUT"}
    assert LammpsMdParser.error_patterns() == {"invalid input:": "ERROR_INVALID_INPUT"}
    for parser in (DeviationParser, LammpsMdParser, MaceTrainParser, SelectParser):
        assert issubclass(parser, EngineParser) and parser.REQUIRED_FILES


# --- deviation -------------------------------------------------------------------------------------


@pytest.fixture
def deviation_inputs():
    from aiida_mofmlp.data.structure_set import StructureSetData

    return {"frames": StructureSetData.from_file(DATA / "deviation" / "frames.extxyz")}


def test_deviation_outputs(parse, deviation_inputs):
    outputs, calc = parse("mofmlp.deviation", DeviationParser, stored("deviation"), deviation_inputs)
    assert_exit(calc, 0)
    deviation = outputs["deviation"]
    with np.load(DATA / "deviation" / "ok" / "deviation.npz") as data:
        assert set(deviation.get_arraynames()) == set(data.files)
        np.testing.assert_array_equal(deviation.get_array("sigma_max"), data["sigma_max"])
    assert deviation.get_array("sigma_max").shape == (4,)
    assert deviation.base.attributes.get("units")["sigma"] == "eV/Angstrom"
    summary = outputs["summary"].get_dict()
    assert summary["n_frames"] == summary["n_frames_expected"] == 4
    assert summary["n_models"] == 2
    assert "frames" not in summary
    assert summary["sigma_max_max"] == pytest.approx(float(np.max(deviation.get_array("sigma_max"))))
    # frames without guests have no guest sigma: NaN in the arrays
    assert np.isnan(deviation.get_array("sigma_max_guest")).any()


def test_deviation_rejected_missing_and_corrupt(parse, deviation_inputs):
    _, calc = parse("mofmlp.deviation", DeviationParser, stored("deviation", "rejected"), deviation_inputs)
    assert_exit(calc, 302, "unknown deviation input keys ['batch']")
    retrieved = stored("deviation", "ok", {"deviation.json": None, "stderr.txt": NO_ERROR_STDERR})
    _, calc = parse("mofmlp.deviation", DeviationParser, retrieved, deviation_inputs)
    assert_exit(calc, 300, "deviation.json absent", "MemoryError: out of memory")
    _, calc = parse(
        "mofmlp.deviation",
        DeviationParser,
        stored("deviation", "ok", {"deviation.json": "{4"}),
        deviation_inputs,
    )
    assert_exit(calc, 301, "deviation.json")
    retrieved = stored("deviation", "ok", {"deviation.npz": CORRUPT_NPZ})
    _, calc = parse("mofmlp.deviation", DeviationParser, retrieved, deviation_inputs)
    assert_exit(calc, 301, "deviation.npz")


def test_deviation_frame_count_and_nonfinite_sigma(parse, deviation_inputs):
    from aiida_mofmlp.data.structure_set import StructureSetData

    three = StructureSetData(frames=deviation_inputs["frames"].get_frames()[:3])
    _, calc = parse("mofmlp.deviation", DeviationParser, stored("deviation"), {"frames": three})
    assert_exit(calc, 301, "4 frames evaluated, the input set has 3")
    summary = json.loads((DATA / "deviation" / "ok" / "deviation.json").read_text())
    summary["frames"]["sigma_max"][2] = None
    retrieved = stored("deviation", "ok", {"deviation.json": json.dumps(summary)})
    outputs, calc = parse("mofmlp.deviation", DeviationParser, retrieved, deviation_inputs)
    assert_exit(calc, 410, "frames [2]")
    assert "deviation" in outputs and "summary" in outputs


# --- LAMMPS MD -------------------------------------------------------------------------------------


def test_lammps_md_outputs(parse):
    outputs, calc = parse("mofmlp.lammps_md", LammpsMdParser, stored("lammps_md"))
    assert_exit(calc, 0)
    results = outputs["results"].get_dict()
    assert results["status"] == "completed" and results["n_frames"] == 3
    trajectory = outputs["trajectory"]
    assert trajectory.count == 3
    assert trajectory.base.attributes.get("md_status") == "completed"
    assert trajectory.base.attributes.get("prediction_keys") == results["keys"]
    thermo = outputs["thermo"]
    assert thermo.get_array("step")[-1] == 20
    assert thermo.base.attributes.get("units") == results["units"]


def test_lammps_md_rejected_missing_corrupt_and_unstable(parse):
    _, calc = parse("mofmlp.lammps_md", LammpsMdParser, stored("lammps_md", "rejected"))
    assert_exit(calc, 302, "ensemble 'nvx' is not valid")
    retrieved = stored("lammps_md", "ok", {"results.json": None, "stderr.txt": ""})
    _, calc = parse("mofmlp.lammps_md", LammpsMdParser, retrieved)
    assert_exit(calc, 300, "results.json absent; no stderr")
    _, calc = parse("mofmlp.lammps_md", LammpsMdParser, stored("lammps_md", "ok", {"results.json": "[1,"}))
    assert_exit(calc, 301, "results.json")
    outputs, calc = parse(
        "mofmlp.lammps_md", LammpsMdParser, stored("lammps_md", "ok", {"trajectory.extxyz": None})
    )
    assert_exit(calc, 300, "trajectory.extxyz absent")
    assert "results" in outputs
    _, calc = parse(
        "mofmlp.lammps_md", LammpsMdParser, stored("lammps_md", "ok", {"thermo.npz": CORRUPT_NPZ})
    )
    assert_exit(calc, 301, "thermo.npz")
    retrieved = stored("lammps_md", "ok", {"trajectory.extxyz": "3\nnot an extxyz frame\n"})
    _, calc = parse("mofmlp.lammps_md", LammpsMdParser, retrieved)
    assert_exit(calc, 301, "trajectory.extxyz")
    unstable = edited_json("lammps_md", "results.json", status="nan", message="energy is nan at step 20")
    outputs, calc = parse(
        "mofmlp.lammps_md", LammpsMdParser, stored("lammps_md", "ok", {"results.json": unstable})
    )
    assert_exit(calc, 401, "energy is nan at step 20")
    assert {"results", "trajectory", "thermo"} <= set(outputs)
    unknown = edited_json("lammps_md", "results.json", status="exploded")
    _, calc = parse("mofmlp.lammps_md", LammpsMdParser, stored("lammps_md", "ok", {"results.json": unknown}))
    assert_exit(calc, 301, "unknown status 'exploded'")


# --- MACE training ---------------------------------------------------------------------------------


@pytest.fixture
def train_inputs(tmp_path):
    from aiida_mofmlp.data.mace_model import MaceModelData
    from aiida_mofmlp.engines.mace.foundation import make_small_model

    path = make_small_model(["H"], tmp_path / "foundation.model", num_channels=2, num_interactions=1)
    return {"foundation_model": MaceModelData.from_file(path)}  # only its hash is read by the parser


def test_mace_train_outputs(parse, train_inputs):
    outputs, calc = parse("mofmlp.mace_train", MaceTrainParser, stored("mace_train"), train_inputs)
    assert_exit(calc, 0)
    model = outputs["model"]
    assert model.parent_sha256 == train_inputs["foundation_model"].sha256
    assert model.species == ["H", "C", "O", "Zn"] and model.head == "Default"
    assert model.base.attributes.get("training_mode") == "naive"
    metrics = outputs["metrics"].get_dict()
    assert metrics["valid"]["n_frames"] == 3 and metrics["train"]["n_frames"] == 6
    assert metrics["valid"]["mae_f"] > 0
    assert metrics["mode"] == "naive" and metrics["heads"] == ["Default"]
    assert len(outputs["curves"].get_array("epoch")) >= 1
    assert outputs["log"].filename == "mace_train.log"


def test_mace_train_rejected_missing_corrupt_and_failed(parse, train_inputs):
    outputs, calc = parse(
        "mofmlp.mace_train", MaceTrainParser, stored("mace_train", "rejected"), train_inputs
    )
    assert_exit(calc, 302, "unknown training input keys ['epochs']")
    assert "log" not in outputs
    retrieved = stored("mace_train", "ok", {"results.json": None, "stderr.txt": NO_ERROR_STDERR})
    outputs, calc = parse("mofmlp.mace_train", MaceTrainParser, retrieved, train_inputs)
    assert_exit(calc, 300, "results.json absent", "MemoryError")
    assert "log" in outputs  # the log of a failed run is kept
    _, calc = parse(
        "mofmlp.mace_train", MaceTrainParser, stored("mace_train", "ok", {"results.json": "{"}), train_inputs
    )
    assert_exit(calc, 301, "results.json")
    _, calc = parse(
        "mofmlp.mace_train",
        MaceTrainParser,
        stored("mace_train", "ok", {"curves.npz": CORRUPT_NPZ}),
        train_inputs,
    )
    assert_exit(calc, 301, "curves.npz")
    _, calc = parse(
        "mofmlp.mace_train", MaceTrainParser, stored("mace_train", "ok", {"model.model": None}), train_inputs
    )
    assert_exit(calc, 310)
    retrieved = stored("mace_train", "ok", {"model.model": b"not a torch file"})
    _, calc = parse("mofmlp.mace_train", MaceTrainParser, retrieved, train_inputs)
    assert_exit(calc, 301, "model.model")


def test_mace_train_malicious_model_not_unpickled(parse, train_inputs, malicious_model):
    """A retrieved model whose pickle runs code is refused by the parser (the daemon) without opening it."""
    path, marker = malicious_model
    retrieved = stored("mace_train", "ok", {"model.model": path.read_bytes()})
    _, calc = parse("mofmlp.mace_train", MaceTrainParser, retrieved, train_inputs)
    assert_exit(calc, 301, "not a model in the safe form")
    assert not marker.exists()
    diverged = edited_json("mace_train", "results.json", status="diverged", message="loss became NaN")
    retrieved = stored("mace_train", "ok", {"results.json": diverged})
    _, calc = parse("mofmlp.mace_train", MaceTrainParser, retrieved, train_inputs)
    assert_exit(calc, 410, "loss became NaN")
    failed = edited_json(
        "mace_train", "results.json", status="failed", message="mace_run_train exited with 1"
    )
    _, calc = parse(
        "mofmlp.mace_train",
        MaceTrainParser,
        stored("mace_train", "ok", {"results.json": failed}),
        train_inputs,
    )
    assert_exit(calc, 420, "mace_run_train exited with 1")


def test_mace_train_nonfinite_metrics_become_none(parse, train_inputs):
    results = json.loads((DATA / "mace_train" / "ok" / "results.json").read_text())
    results["metrics"]["valid"]["rmse_f"] = float("nan")  # as an older engine wrote it
    retrieved = stored("mace_train", "ok", {"results.json": json.dumps(results)})
    outputs, calc = parse("mofmlp.mace_train", MaceTrainParser, retrieved, train_inputs)
    assert_exit(calc, 0)
    assert outputs["metrics"].get_dict()["valid"]["rmse_f"] is None


def test_mace_train_stress_errors_reach_the_metrics(parse, train_inputs):
    results = json.loads((DATA / "mace_train" / "ok" / "results.json").read_text())
    stress = {"n_frames_stress": 3, "mae_stress": 0.01, "rmse_stress": 0.02, "mae_stress_gpa": 1.602176634}
    results["metrics"]["valid"].update(stress)
    results["units"].update({"mae_stress": "eV/Angstrom^3", "mae_stress_gpa": "GPa"})
    retrieved = stored("mace_train", "ok", {"results.json": json.dumps(results)})
    outputs, calc = parse("mofmlp.mace_train", MaceTrainParser, retrieved, train_inputs)
    assert_exit(calc, 0)
    metrics = outputs["metrics"].get_dict()
    assert {key: metrics["valid"][key] for key in stress} == stress
    assert metrics["units"]["mae_stress"] == "eV/Angstrom^3" and metrics["units"]["mae_stress_gpa"] == "GPa"
    assert "mae_stress" not in metrics["train"]


# --- selection -------------------------------------------------------------------------------------


def test_select_outputs(parse):
    outputs, calc = parse("mofmlp.select", SelectParser, stored("select"))
    assert_exit(calc, 0)
    report = outputs["report"].get_dict()
    assert report["n_selected"] == 3 and report["n_pool"] == 8
    assert outputs["selected"].count == 3
    frames = outputs["selected"].get_frames()
    assert [frame.info["parent_index"] for frame in frames] == report["selected"]
    node = outputs["map"]
    assert node.get_array("pool_xy").shape == (8, 2)
    assert node.get_array("selected").tolist() == report["selected"]
    assert node.base.attributes.get("method") == report["map_method"]
    assert outputs["map_figure"].get_content("rb")[:8] == b"\x89PNG\r\n\x1a\n"


def test_select_rejected_missing_corrupt_and_empty(parse):
    _, calc = parse("mofmlp.select", SelectParser, stored("select", "rejected"))
    assert_exit(calc, 302, "unknown selection parameter(s) ['n_clusters']")
    _, calc = parse("mofmlp.select", SelectParser, stored("select", "ok", {"selected.json": None}))
    assert_exit(calc, 300, "selected.json absent; no stderr")
    _, calc = parse("mofmlp.select", SelectParser, stored("select", "ok", {"selected.json": "not json"}))
    assert_exit(calc, 301, "selected.json")
    outputs, calc = parse("mofmlp.select", SelectParser, stored("select", "ok", {"selected.extxyz": None}))
    assert_exit(calc, 300, "selected.extxyz absent")
    assert "report" in outputs
    _, calc = parse("mofmlp.select", SelectParser, stored("select", "ok", {"map.npz": CORRUPT_NPZ}))
    assert_exit(calc, 301, "map.npz")
    buffer = io.BytesIO()
    np.savez(buffer, pool_xy=np.zeros((8, 2)))  # a map without the other arrays
    _, calc = parse("mofmlp.select", SelectParser, stored("select", "ok", {"map.npz": buffer.getvalue()}))
    assert_exit(calc, 301, "map.npz")
    outputs, calc = parse(
        "mofmlp.select", SelectParser, stored("select", "ok", {"map.npz": None, "map.png": None})
    )
    assert_exit(calc, 0)
    assert "map" not in outputs and "map_figure" not in outputs
    empty = edited_json("select", "selected.json", n_selected=0, warnings=["the sigma window is empty"])
    outputs, calc = parse("mofmlp.select", SelectParser, stored("select", "ok", {"selected.json": empty}))
    assert_exit(calc, 410, "the sigma window is empty")
    assert set(outputs) == {"report"}
