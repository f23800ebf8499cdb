"""A real walltime kill: Slurm cancels a CP2K job at its one-minute limit; the restart handler continues it.

PBE single point of eight water molecules in a 10 Angstrom box on a 1000 Ry grid with a tight SCF threshold:
minutes even on an idle machine (four molecules at 400 Ry finished inside the minute on an idle 2 cores).
Slurm cancels the job "DUE TO TIME LIMIT" (checked in the job's stderr), the parser reports the incomplete
output (303), and ``Cp2kSinglePointWorkChain.handle_walltime`` restarts from the wavefunction CP2K wrote at
each SCF step, with twice the walltime, until the SCF converges.

It takes two to five minutes (the first job alone lasts the one-minute limit plus Slurm's kill wait).
"""

from __future__ import annotations

import itertools

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMPUTER = "localhost-slurm"  # the computer `aiida-mofmlp setup --scheduler slurm` creates
TIME_LIMIT = 60  # seconds: Slurm's --time of the first job

SUBMIT_SINGLE_POINT = """
import json
from ase import Atoms
from ase.build import molecule
from aiida.engine import submit
from aiida_mofmlp.workflows.cp2k.base import Cp2kSinglePointWorkChain

box = 10.0
waters = Atoms(cell=[box] * 3, pbc=True)
for i in range(8):  # a 2 x 2 x 2 grid: well over a minute even on an idle machine
    water = molecule("H2O")
    water.translate([1.5 + (i % 2) * 3.0, 1.5 + (i // 2 % 2) * 3.0, box / 2 - 1.5 + (i // 4) * 3.0])
    waters += water
scf = {{
    "EPS_SCF": 1.0e-6, "MAX_SCF": 300,
    "OT": {{"MINIMIZER": "DIIS", "PRECONDITIONER": "FULL_SINGLE_INVERSE"}},
    "OUTER_SCF": {{"EPS_SCF": 1.0e-6, "MAX_SCF": 1}},
    "PRINT": {{"RESTART": {{"EACH": {{"QS_SCF": 1}}}}}},  # a wavefunction to restart from at every step
}}
builder = Cp2kSinglePointWorkChain.get_builder_from_protocol(
    orm.load_code("mofmlp-cp2k@{computer}"), orm.StructureData(ase=waters), "balanced",
    # a fine grid (the protocol has 400 Ry) makes every SCF step slow: the job lasts minutes on any machine
    overrides={{"parameters": {{"FORCE_EVAL": {{"DFT": {{"SCF": scf, "MGRID": {{"CUTOFF": 1000}}}}}}}}}},
    options={{"max_wallclock_seconds": {time_limit}}},
)
builder.walltime_fraction = orm.Float(10.0)  # CP2K's own WALLTIME beyond Slurm's limit: Slurm kills first
print(json.dumps({{"pk": submit(builder).pk}}))
"""

CALCULATIONS = """
import json
node = orm.load_node({pk})
calcs = sorted((n for n in node.called if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)
print(json.dumps([{{
    "exit_status": calc.exit_status,
    "walltime": calc.get_option("max_wallclock_seconds"),
    "stderr": calc.get_scheduler_stderr() or "",
    "scf_guess": calc.inputs.parameters["FORCE_EVAL"]["DFT"]["SCF"].get("SCF_GUESS"),
    "parent": calc.inputs.parent_calc_folder.creator.uuid if "parent_calc_folder" in calc.inputs else None,
    "uuid": calc.uuid,
}} for calc in calcs]))
"""


def test_slurm_walltime_kill_is_continued_with_more_time(production_profile):
    code = SUBMIT_SINGLE_POINT.format(computer=COMPUTER, time_limit=TIME_LIMIT)
    pk = production_profile.python(code)["pk"]
    state = production_profile.wait_terminated(pk, timeout=900)
    calcs = production_profile.python(CALCULATIONS.format(pk=pk))
    first = calcs[0]
    if first["exit_status"] == 0:
        pytest.fail("the CP2K job finished within Slurm's one-minute limit: this machine is too fast for it")
    assert "DUE TO TIME LIMIT" in first["stderr"], first["stderr"]
    assert first["exit_status"] == 303, first  # the output ends before CP2K's normal end
    assert state["exit_status"] == 0, (state, calcs)
    assert calcs[-1]["exit_status"] == 0
    for previous, restart in itertools.pairwise(calcs):
        assert restart["parent"] == previous["uuid"], "a restart must start from the killed job's folder"
        assert restart["scf_guess"] == "RESTART"
        assert restart["walltime"] == 2 * previous["walltime"]
    print(
        f"walltime kill: {len(calcs) - 1} Slurm kill(s), walltimes {[calc['walltime'] for calc in calcs]} s, "
        f"exit statuses {[calc['exit_status'] for calc in calcs]}"
    )
