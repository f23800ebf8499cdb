"""Shared fixtures: a temporary AiiDA profile (aiida's own fixtures) and the plugin's codes on localhost."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["aiida.tools.pytest_fixtures"]

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def mofmlp_codes(aiida_profile):
    """The codes that ``aiida-mofmlp setup`` creates, created the same way in the test profile."""
    from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost

    computer = ensure_localhost()
    return ensure_codes(computer)


@pytest.fixture
def require_code(mofmlp_codes):
    """Return a function giving the code of a kind, or failing the test clearly when it is missing."""

    def _require(kind: str):
        code = mofmlp_codes.get(kind)
        if code is None:
            pytest.fail(f"the {kind} program is not installed; run the README's test command to install it")
        return code

    return _require


@pytest.fixture(scope="session")
def clean_environment():
    """A function giving a new user's shell environment: no virtual environment activated or on PATH, the
    AiiDA configuration folder ``aiida_path``, and ``extra`` variables (how the README's commands are run)."""
    import os
    import sys
    from pathlib import Path

    venv_bin = Path(sys.executable).parent

    def _environment(aiida_path, **extra: str) -> dict[str, str]:
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != venv_bin]
        env = {
            "HOME": os.environ.get("HOME", "/root"),
            "PATH": os.pathsep.join(path or ["/usr/local/bin", "/usr/bin", "/bin"]),
            "LANG": "C.UTF-8",
            "AIIDA_PATH": str(aiida_path),
            "MOFMLP_VENV": sys.prefix,  # the environment of the tests (the scripts' default is ./.venv)
            "OMP_NUM_THREADS": "1",
        }
        return {**env, **extra}

    return _environment


@pytest.fixture(scope="session")
def raspa_share_dir():
    """RASPA2's share folder (force fields, molecules, framework CIFs)."""
    from pathlib import Path

    import RASPA2

    return Path(RASPA2.__file__).parent / "share" / "raspa"


#: tests sharing an expensive session fixture, or one setup of services, run on one pytest-xdist worker
_SHARED_SETUP_GROUPS = {
    "finished_al_run": "finished_al_run",
    "small_training_run": "small_training_run",
    "production_profile": "production",
    "slurm": "production",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Group tests for ``pytest -n N --dist loadgroup`` (scripts/test.sh): a worker takes whole groups.

    A test using a shared session fixture (the finished loop, the Slurm + daemon profile) joins that
    fixture's group, so it is built once; every other test stays with its module, whose module-scoped
    fixtures are then built once too. Without xdist the marks do nothing.
    """
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        fixtures = getattr(item, "fixturenames", ())
        shared = next((group for name, group in _SHARED_SETUP_GROUPS.items() if name in fixtures), None)
        item.add_marker(pytest.mark.xdist_group(shared or item.nodeid.split("::")[0]))


#: a tiny 2-iteration active-learning run: the packaged overrides file workflows/protocols/overrides/tiny.yaml
#: (trust lo so low that iteration 1 is never converged)
TINY_AL_OVERRIDES = "tiny"


@pytest.fixture(scope="session")
def finished_al_run(aiida_profile, tmp_path_factory):
    """The finished ActiveLearningWorkChain node of the demo's loop (DMOF-1 + CO2) at tiny settings.

    Real RASPA, LAMMPS, MACE and CP2K (GFN1-xTB); 2 iterations; about 5 minutes on 2 cores. Shared by the
    integration test of the loop and by the tests of the provenance tools.
    """
    import warnings

    from aiida.engine import run_get_node

    from aiida_mofmlp.cli.demo import demo_builder
    from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost

    warnings.filterwarnings("ignore", message=r"`CalcJobNode\.(set|get)_extra` is deprecated")
    codes = ensure_codes(ensure_localhost())
    missing = [kind for kind in ("cp2k", "raspa", "train", "md", "deviation") if codes.get(kind) is None]
    if missing:
        pytest.fail(f"programs {missing} are not installed; run the README's test command to install them")
    builder = demo_builder(codes, tmp_path_factory.mktemp("al"), TINY_AL_OVERRIDES)
    _, node = run_get_node(builder)
    return node


# --- process fixtures in the style of aiida-quantumespresso's tests ------------------------------------


@pytest.fixture
def generate_calc_job_node(aiida_localhost):
    """Return a function making a stored CalcJobNode of ``entry_point`` with given exit status and outputs.

    The node stands for a finished child of a restart work chain in handler tests (handlers only read
    the node's exit status, inputs and outputs). ``retrieved`` maps file names to text or bytes (a
    FolderData is made); ``outputs`` maps link labels to Data nodes (stored and linked as CREATE links).
    """
    from aiida import orm
    from aiida.common import LinkType
    from aiida.plugins import CalculationFactory

    def _generate(
        entry_point: str,
        exit_status: int | None = 0,
        inputs: dict | None = None,
        outputs: dict | None = None,
        retrieved: dict[str, str | bytes] | None = None,
        remote_folder: bool = True,
    ):
        process_class = CalculationFactory(entry_point)
        node = orm.CalcJobNode(computer=aiida_localhost, process_type=f"aiida.calculations:{entry_point}")
        node.set_option("resources", {"num_machines": 1, "num_mpiprocs_per_machine": 1})
        node.set_process_state("finished")
        if exit_status is not None:
            node.set_exit_status(exit_status)
            for code in process_class.exit_codes.values():
                if code.status == exit_status:
                    node.set_exit_message(code.message)
        for label, value in (inputs or {}).items():
            value.store()
            node.base.links.add_incoming(value, LinkType.INPUT_CALC, label)
        node.store()
        linked = dict(outputs or {})
        if retrieved is not None:
            folder = orm.FolderData()
            for name, content in retrieved.items():
                data = content if isinstance(content, bytes) else content.encode()
                folder.base.repository.put_object_from_bytes(data, name)
            linked["retrieved"] = folder
        if remote_folder:
            linked.setdefault("remote_folder", orm.RemoteData(computer=aiida_localhost, remote_path="/tmp"))
        for label, value in linked.items():
            value.base.links.add_incoming(node, LinkType.CREATE, label)
            value.store()
        return node

    return _generate


@pytest.fixture
def generate_workchain():
    """Return a function instantiating work chain ``entry_point`` (or class) with ``inputs``, not run."""
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager
    from aiida.plugins import WorkflowFactory

    def _generate(entry_point, inputs: dict):
        process_class = WorkflowFactory(entry_point) if isinstance(entry_point, str) else entry_point
        runner = get_manager().get_runner()
        return instantiate_process(runner, process_class, **inputs)

    return _generate


def serialize_value(value):
    """A plain, stable representation of a builder value for data regression."""
    from aiida import orm

    if isinstance(value, orm.Dict):
        return value.get_dict()
    if isinstance(value, orm.List):
        return value.get_list()
    if isinstance(value, orm.BaseType):
        return value.value
    if isinstance(value, orm.AbstractCode):
        return f"code:{value.label}"
    if isinstance(value, orm.StructureData):
        return f"structure:{value.get_formula()}"
    if isinstance(value, orm.Data):
        size = f":{len(value)}" if hasattr(value, "__len__") else ""
        return f"{type(value).__name__}{size}"
    if isinstance(value, dict) or hasattr(value, "items"):
        return {key: serialize_value(item) for key, item in sorted(value.items()) if item not in (None, {})}
    if isinstance(value, list | tuple):
        return [serialize_value(item) for item in value]
    return value


@pytest.fixture
def serialize_builder():
    """Return a function turning a ProcessBuilder into nested plain data (for ``data_regression``)."""

    def _serialize(builder) -> dict:
        return serialize_value(builder._inputs(prune=True))

    return _serialize


class _WritesMarker:
    """Pickled, it calls ``os.system`` on load: the unpickler's environment goes to a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import shlex

        return (os.system, (f"env > {shlex.quote(self.marker)}",))


@pytest.fixture
def malicious_model(tmp_path):
    """``(path, marker)``: a ``.model`` file whose pickle writes ``marker`` when opened."""
    import torch

    marker = tmp_path / "unpickled.marker"
    path = tmp_path / "malicious.model"
    torch.save(_WritesMarker(marker), str(path))
    return path, marker
