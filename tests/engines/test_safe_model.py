"""Safe-form MACE models: rebuilt exactly, never unpickled; pickles opened only when trusted, aside."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from aiida_mofmlp.common.errors import InputError
from aiida_mofmlp.engines.mace import safe_model
from aiida_mofmlp.engines.mace.common import load_model, mace_calculator, model_species
from aiida_mofmlp.engines.mace.foundation import make_small_model
from aiida_mofmlp.engines.mace.toy import TOY_SPECIES, toy_frames

pytest.importorskip("mace")


@pytest.fixture(scope="module")
def safe_and_pickled(tmp_path_factory):
    """A small safe model and the same model as mace's usual pickle."""
    import torch

    folder = tmp_path_factory.mktemp("models")
    safe = make_small_model(TOY_SPECIES, folder / "safe.model", seed=3, num_channels=4, e0s={"C": -2.5})
    pickled = folder / "pickled.model"
    torch.save(load_model(safe), str(pickled))
    return safe, pickled


def _energy_forces(calculator, atoms):
    atoms = atoms.copy()
    atoms.calc = calculator
    return atoms.get_potential_energy(), atoms.get_forces()


def test_safe_form_rebuilds_the_same_model(safe_and_pickled, tmp_path):
    safe, pickled = safe_and_pickled
    assert safe_model.is_safe_model(safe) and not safe_model.is_safe_model(pickled)
    converted = tmp_path / "converted.model"
    facts = safe_model.convert_in_subprocess(pickled, converted)
    assert facts["species"] == ["H", "C", "O", "Zn"] and facts["heads"] == ["Default"]
    assert facts["dtype"] == "float64" and facts["r_max"] == pytest.approx(4.0)
    assert model_species(converted) == [1, 6, 8, 30]
    atoms = toy_frames(1, seed=4, max_guests=1)[0]
    e_pickle, f_pickle = _energy_forces(mace_calculator(pickled, trusted=True), atoms)
    e_safe, f_safe = _energy_forces(mace_calculator(converted), atoms)
    assert e_safe == pytest.approx(e_pickle, abs=1e-10)
    np.testing.assert_allclose(f_safe, f_pickle, atol=1e-10)
    assert abs(e_pickle) > 1e-3 and np.abs(f_pickle).max() > 1e-6  # a model that computes something


def test_hash_checked_on_load(safe_and_pickled):
    safe, _ = safe_and_pickled
    load_model(safe, sha256=safe_model.sha256_of(safe))
    with pytest.raises(InputError, match="SHA-256"):
        load_model(safe, sha256="0" * 64)


def test_hash_recorded_by_the_calcjob_is_checked(safe_and_pickled, tmp_path):
    """A CalcJob writes model_hashes.json beside the models it copies in; a changed file is refused."""
    import json
    import shutil

    copy = tmp_path / "model_0.model"
    shutil.copyfile(safe_and_pickled[0], copy)
    record = tmp_path / safe_model.MODEL_HASHES_FILE
    record.write_text(json.dumps({"model_0.model": safe_model.sha256_of(copy)}))
    load_model(copy)
    record.write_text(json.dumps({"model_0.model": "f" * 64}))
    with pytest.raises(InputError, match="the file was changed"):
        load_model(copy)


def test_malicious_pickle_is_never_opened(malicious_model):
    path, marker = malicious_model
    for attempt in (
        lambda: load_model(path),
        lambda: model_species(path),
        lambda: safe_model.describe_safe_model(path),
        lambda: mace_calculator(path),
    ):
        with pytest.raises(safe_model.UntrustedModelError, match="trusted=True"):
            attempt()
    assert not safe_model.is_safe_model(path)
    assert not marker.exists()


def test_deviation_job_refuses_a_malicious_model(malicious_model, tmp_path):
    """The engine as the compute node runs it: exit status 2, the refusal in stderr, no marker."""
    import json

    from aiida_mofmlp.common.frames import write_frames

    path, marker = malicious_model
    write_frames(toy_frames(1, seed=1), tmp_path / "frames.extxyz")
    (tmp_path / "input.json").write_text(json.dumps({"models": [str(path)] * 2, "frames": "frames.extxyz"}))
    done = subprocess.run(
        [sys.executable, "-m", "aiida_mofmlp.engines.mace.deviation", "input.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "not a model in the safe form" in done.stderr
    assert not marker.exists()


def test_trusted_pickle_runs_only_in_a_clean_child(malicious_model, monkeypatch):
    """With trusted=True the pickle's code does run, but in a child without the profile's environment."""
    path, marker = malicious_model
    monkeypatch.setenv("AIIDA_PATH", "/profile/secret")
    with pytest.raises(InputError, match="not a loadable MACE model"):
        safe_model.convert_in_subprocess(path, path.with_suffix(".safe"))
    environment = dict(line.split("=", 1) for line in marker.read_text().splitlines() if "=" in line)
    assert "AIIDA_PATH" not in environment
    assert environment["HOME"].startswith(("/tmp", environment.get("TMPDIR", "/tmp")))
    assert environment["OMP_NUM_THREADS"] == "1"


def test_conversion_time_limit(tmp_path):
    import torch

    class Sleeps:
        def __reduce__(self):
            return (time.sleep, (60,))

    path = tmp_path / "slow.model"
    torch.save(Sleeps(), str(path))
    start = time.monotonic()
    with pytest.raises(InputError, match="more than 3 s"):
        safe_model.convert_in_subprocess(path, tmp_path / "out.model", timeout=3)
    assert time.monotonic() - start < 30


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p, c: p.update(model_class="subprocess.Popen"), "not a class of mace"),
        (lambda p, c: c.update(interaction_cls={"class": "os.system"}), "not a class of mace"),
        (lambda p, c: c.update(gate={"gate": "eval"}), "gate 'eval' is not allowed"),
    ],
)
def test_safe_payload_names_only_mace_classes(safe_and_pickled, tmp_path, edit, message):
    import json

    import torch

    payload = safe_model.read_safe_payload(safe_and_pickled[0])
    config = json.loads(payload["config"])
    edit(payload, config)
    payload["config"] = json.dumps(config)
    path = tmp_path / "edited.model"
    torch.save(payload, str(path))
    with pytest.raises(InputError, match=message):
        load_model(path)
