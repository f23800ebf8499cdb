"""MaceModelData: facts read from a real (tiny) MACE model file; lookup by hash."""

import pytest

from aiida_mofmlp.data import MaceModelData

pytest.importorskip("mace")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from aiida_mofmlp.engines.mace.foundation import make_small_model

    return make_small_model(["H", "C", "O"], tmp_path_factory.mktemp("model") / "tiny.model", r_max=4.0)


def test_attributes_from_model(aiida_profile, tiny_model):
    node = MaceModelData.from_file(tiny_model, parent_sha256="abc").store()
    assert node.species == ["H", "C", "O"]
    assert node.r_max == pytest.approx(4.0)
    assert node.heads and node.head == node.heads[-1]
    assert node.parent_sha256 == "abc"
    assert len(node.sha256) == 64
    assert "MACE" in node.architecture


def test_same_file_is_found_by_hash(aiida_profile, tiny_model):
    first = MaceModelData.get_or_create(tiny_model)
    second = MaceModelData.get_or_create(tiny_model)
    assert first.pk == second.pk
    assert first.pk in {node.pk for node in MaceModelData.find_by_hash(first.sha256)}


def test_bad_inputs_are_named(aiida_profile, tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MaceModelData.from_file(tmp_path / "missing.model")
    not_a_model = tmp_path / "notes.model"
    not_a_model.write_text("hello")
    with pytest.raises(ValueError, match="not a model in the safe form"):
        MaceModelData.from_file(not_a_model)
    with pytest.raises(ValueError, match="not a loadable MACE model"):
        MaceModelData.from_file(not_a_model, trusted=True)
    with pytest.raises(ValueError, match="valid heads"):
        MaceModelData.from_file(tiny_model, head="nonexistent")


def test_malicious_model_refused_without_trust(aiida_profile, malicious_model):
    from aiida import orm

    path, marker = malicious_model
    before = orm.QueryBuilder().append(MaceModelData).count()
    for attempt in (MaceModelData.from_file, MaceModelData.get_or_create):
        with pytest.raises(ValueError, match="trusted=True"):
            attempt(path)
    assert not marker.exists()
    assert orm.QueryBuilder().append(MaceModelData).count() == before


def test_trusted_pickle_stored_in_safe_form_and_recognised(aiida_profile, tiny_model, tmp_path):
    import torch

    from aiida_mofmlp.common.frames import sha256_of_file
    from aiida_mofmlp.engines.mace.common import load_model
    from aiida_mofmlp.engines.mace.safe_model import is_safe_model

    pickled = tmp_path / "mace-mp-like.model"
    torch.save(load_model(tiny_model), str(pickled))
    with pytest.raises(ValueError, match="trusted=True"):
        MaceModelData.get_or_create(pickled)
    node = MaceModelData.get_or_create(pickled, trusted=True)
    assert node.base.attributes.get("source_sha256") == sha256_of_file(pickled)
    assert node.species == ["H", "C", "O"] and node.base.attributes.get("safe_form") is True
    with node.as_path() as stored:
        assert is_safe_model(stored)
    # the same pickle again: found by the hash of its source, not opened (trusted not even needed)
    assert MaceModelData.get_or_create(pickled).pk == node.pk


def test_calcjob_records_the_hash_of_each_model_it_copies(aiida_profile, mofmlp_codes, tiny_model, tmp_path):
    import json

    from aiida import orm
    from aiida.common.folders import Folder
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager
    from ase.build import molecule

    from aiida_mofmlp.calculations.deviation import DeviationCalculation
    from aiida_mofmlp.data.structure_set import StructureSetData
    from aiida_mofmlp.engines.mace.foundation import make_small_model
    from aiida_mofmlp.engines.mace.safe_model import MODEL_HASHES_FILE

    other = make_small_model(["H", "C", "O"], tmp_path / "other.model", seed=5)
    models = {f"m{k}": MaceModelData.get_or_create(path) for k, path in enumerate((tiny_model, other))}
    methanol = molecule("CH3OH", cell=[8.0, 8.0, 8.0], pbc=True)
    frames = [methanol, methanol.copy()]
    inputs = {
        "code": mofmlp_codes["deviation"],
        "models": models,
        "frames": StructureSetData.from_frames(frames).store(),
    }
    process = instantiate_process(get_manager().get_runner(), DeviationCalculation, **inputs)
    (tmp_path / "job").mkdir()
    folder = Folder(str(tmp_path / "job"))
    calc_info = process.prepare_for_submission(folder)
    hashes = json.loads((tmp_path / "job" / MODEL_HASHES_FILE).read_text())
    copied = {target: uuid for uuid, _, target in calc_info.local_copy_list}
    assert sorted(hashes) == sorted(t for t in copied if t.endswith(".model")) and len(hashes) == 2
    for target, uuid in copied.items():
        if target in hashes:
            assert hashes[target] == orm.load_node(uuid).sha256


def test_engine_threads_come_from_the_jobs_resources(mofmlp_codes, tiny_model, tmp_path):
    """OMP_NUM_THREADS follows the cores a job asks for (after any prepend text of the code)."""
    from aiida.common.folders import Folder
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager
    from ase.build import molecule

    from aiida_mofmlp.calculations.base import engine_threads
    from aiida_mofmlp.calculations.deviation import DeviationCalculation
    from aiida_mofmlp.data.structure_set import StructureSetData

    assert engine_threads({"num_machines": 1, "num_mpiprocs_per_machine": 1}) is None
    assert engine_threads({"num_cores_per_mpiproc": 4}) == 4
    assert engine_threads({"num_cores_per_machine": 16, "num_mpiprocs_per_machine": 2}) == 8
    assert engine_threads({"num_cores_per_machine": 1, "num_mpiprocs_per_machine": 4}) == 1
    frames = StructureSetData.from_frames([molecule("CH3OH", cell=[8.0] * 3, pbc=True)]).store()
    from aiida_mofmlp.engines.mace.foundation import make_small_model

    other = make_small_model(["H", "C", "O"], tmp_path / "other.model", seed=5)
    models = {f"m{k}": MaceModelData.get_or_create(path) for k, path in enumerate((tiny_model, other))}
    texts = {}
    for cores in (None, 2):
        resources = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
        if cores:
            resources["num_cores_per_mpiproc"] = cores
        inputs = {
            "code": mofmlp_codes["deviation"],
            "models": models,
            "frames": frames,
            "metadata": {"options": {"resources": resources}},
        }
        process = instantiate_process(get_manager().get_runner(), DeviationCalculation, **inputs)
        (tmp_path / f"job{cores}").mkdir()
        texts[cores] = process.prepare_for_submission(Folder(str(tmp_path / f"job{cores}"))).prepend_text
    assert texts[None] is None
    assert texts[2].startswith("export OMP_NUM_THREADS=2")


def test_engines_use_the_threads_they_were_given(monkeypatch):
    import torch

    from aiida_mofmlp.engines.io import threads_from_environment

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert threads_from_environment() == 1 and torch.get_num_threads() == 1  # unset: one, not all
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads_from_environment() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
