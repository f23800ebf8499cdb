"""Headless tests of the property work chains the app runs on a loop's final ensemble, and of the running
iteration table (no browser)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from plumpy import ProcessState

#: the figure data of tests/workflows/properties_adsorption/test_adsorption_plots.py
ISOTHERM = {
    "pressure": [0.1, 1.0],
    "mlp": {"mol_per_kg": [0.5, 2.0], "mol_per_kg_error": [0.1, 0.2]},
    "raspa": {"pressure": [0.1, 1.0], "mol_per_kg": [0.4, 2.5], "mol_per_kg_error": [0.05, None]},
}
HEAT = {
    "mlp_md": [{"n_guests": 2, "value": -30.0, "error": 2.0}],
    "mlp_widom": {"value": -28.0, "error": 1.0},
    "raspa": {"pressure": [0.1, 1.0], "value": [-25.0, -24.0], "error": [0.5, 0.6]},
}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def ended_process(aiida_profile):
    """Return a function storing a workflow node of ``entry_point`` in ``state`` with ``exit_status``, its
    ``outputs`` (Data nodes, linked as RETURN) and ``extras``, called by ``caller`` (node, link label).

    A stand-in, like ``generate_calc_job_node``: a failed or killed loop costs a whole loop run (or a daemon)
    to provoke for real, and the finished property runs would be slow real work chains; the app only reads
    the state, exit status, outputs and extras of these nodes.
    """
    from aiida import orm
    from aiida.common import LinkType
    from aiida.plugins import WorkflowFactory

    def _make(entry_point, state="finished", exit_status=0, outputs=None, extras=None, caller=None):
        process_class = WorkflowFactory(entry_point)
        node = orm.WorkflowNode(process_type=f"aiida.workflows:{entry_point}")
        node.set_process_label(process_class.__name__)
        node.set_process_state(ProcessState(state))
        if state == "finished":
            node.set_exit_status(exit_status)
            for code in process_class.exit_codes.values():
                if code.status == exit_status:
                    node.set_exit_message(code.message)
        if caller is not None:  # (parent node, link label): called by it
            node.base.links.add_incoming(caller[0], LinkType.CALL_WORK, caller[1])
        node.store()
        for label, value in (outputs or {}).items():
            value.store()
            value.base.links.add_incoming(node, LinkType.RETURN, label)
        node.base.extras.set_many(extras or {})
        return node

    return _make


@pytest.mark.parametrize(
    ("state", "exit_status", "words"),
    [
        ("finished", 403, ["failed with exit status 403", "Ensemble training failed"]),
        ("killed", None, ["was killed"]),
    ],
    ids=["failed", "killed"],
)
def test_unusable_loop_gives_a_message(ended_process, tmp_path, state, exit_status, words):
    from aiida_mofmlp.app.results import properties as props
    from aiida_mofmlp.app.results.model import ResultsModel
    from aiida_mofmlp.app.results.view import properties_html

    loop = ended_process(
        "mofmlp.active_learning",
        state,
        exit_status,
        extras={props.PROPERTIES_EXTRA: ["phonons", "adsorption"]},
    )
    results = ResultsModel(figure_folder=tmp_path)
    results.load(loop.pk)
    note = results.properties_note
    for word in [*words, f"<{loop.pk}>", "no usable final ensemble", "get_builder_restart"]:
        assert word in note
    assert "Traceback" not in note
    assert [(row["label"], row["pk"], row["state"]) for row in results.properties] == [
        ("phonons", None, "not submitted"),
        ("adsorption", None, "not submitted"),
    ]
    assert props.RUNS_EXTRA not in loop.base.extras.all
    results.run_properties()  # the button says the same
    assert results.properties_note == note
    assert "no usable final ensemble" in properties_html(results.properties, results.properties_note)
    with pytest.raises(props.PropertyError, match="no usable final ensemble"):
        props.submit_properties(loop)


def test_running_loop_waits(ended_process, tmp_path):
    from aiida_mofmlp.app.results import properties as props
    from aiida_mofmlp.app.results.model import ResultsModel

    loop = ended_process("mofmlp.active_learning", "running", extras={props.PROPERTIES_EXTRA: ["phonons"]})
    results = ResultsModel(figure_folder=tmp_path)
    results.load(loop.pk)
    assert "when the loop ends" in results.properties_note
    assert results.is_live()
    assert results.rows == []
    with pytest.raises(props.PropertyError, match="has not ended yet"):
        props.submit_properties(loop)


def test_finished_adsorption_run_is_shown_with_its_figure(ended_process, tmp_path):
    """A loop whose PropertiesWorkChain ran adsorption (finished) and phonons (failed): each property's state
    and figure (plots_adsorption) are shown, and why the PropertiesWorkChain failed."""
    from aiida import orm

    from aiida_mofmlp.app.results import properties as props
    from aiida_mofmlp.app.results.model import ResultsModel
    from aiida_mofmlp.app.results.view import ResultsView

    loop = ended_process(
        "mofmlp.active_learning", exit_status=0, extras={props.PROPERTIES_EXTRA: ["adsorption", "phonons"]}
    )
    parent = ended_process("mofmlp.properties", exit_status=400, caller=(loop, "properties"))
    adsorption = ended_process(
        "mofmlp.properties.adsorption",
        outputs={"isotherm": orm.Dict(ISOTHERM), "heat_of_adsorption": orm.Dict(HEAT)},
        caller=(parent, "adsorption"),
    )
    failed = ended_process("mofmlp.properties.phonons", exit_status=401, caller=(parent, "phonons"))
    assert props.properties_run(loop).pk == parent.pk
    results = ResultsModel(figure_folder=tmp_path)
    view = ResultsView(results)
    results.load(loop.pk)
    shown, broken = results.properties
    assert (shown["label"], shown["pk"], shown["state"]) == ("adsorption", adsorption.pk, "finished")
    assert set(shown["figures"]) == {"adsorption"}
    assert Path(shown["figures"]["adsorption"]).read_bytes()[:8] == PNG
    assert broken["state"] == "finished, exit status 401" and broken["exit_message"] == failed.exit_message
    assert broken["figures"] == {}
    assert f"PropertiesWorkChain<{parent.pk}>: Properties failed" in results.properties_note
    assert not results.is_live()
    assert (
        f"&lt;{adsorption.pk}&gt;" in view.properties.value and failed.exit_message in view.properties.value
    )
    assert [view.property_figures.get_title(0)] == ["adsorption: adsorption"]
    assert view.property_figures.children[0].value[:8] == PNG
    runs = {"adsorption": adsorption.pk, "phonons": failed.pk}
    assert props.submit_properties(loop) == (runs, [])  # the loop ran them: nothing to submit
    assert props.RUNS_EXTRA not in loop.base.extras.all


def test_poller_has_the_kernel_thread_submit(ended_process, tmp_path):
    """The view's background poller sees the loop end and has the kernel's thread (the asyncio loop the
    view was opened from) try the submission: AiiDA stores nodes only from the thread of its session."""
    import asyncio

    from aiida_mofmlp.app.results import properties as props
    from aiida_mofmlp.app.results.model import ResultsModel
    from aiida_mofmlp.app.results.view import ResultsView

    loop = ended_process("mofmlp.active_learning", "running", extras={props.PROPERTIES_EXTRA: ["phonons"]})
    results = ResultsModel(figure_folder=tmp_path)
    view = ResultsView(results)
    notes = []
    results.observe(
        lambda change: notes.append((change["new"], threading.current_thread())), "properties_note"
    )

    async def follow_until_ended():
        view.pk.value = loop.pk
        results.load(loop.pk)
        view.follow(interval=0.2, limit=60)
        loop.set_process_state(ProcessState.FINISHED)
        loop.set_exit_status(403)
        for _ in range(200):
            await asyncio.sleep(0.1)
            if "failed with exit status 403" in results.properties_note:
                return

    try:
        asyncio.run(follow_until_ended())
    finally:
        view.stop_following()
    assert not view._follower.is_alive()
    failed = [thread for note, thread in notes if "failed with exit status 403" in note]
    assert failed and failed[0] is threading.main_thread(), notes
    assert "failed with exit status 403" in view.properties.value


# --- on the finished loop of the session (real RASPA, LAMMPS, MACE, CP2K: minutes) ----------------------


@pytest.mark.integration
def test_iteration_table_while_running_matches_final(finished_al_run):
    """The table shown while the loop runs (history.iterations_XX, else rows from the history) agrees with
    the final ``iterations`` output."""
    from aiida_mofmlp.app.results.model import history_rows, iteration_rows
    from aiida_mofmlp.tools.queries import iteration_table

    run = finished_al_run
    final = iteration_table(run)
    assert iteration_rows(run) == final
    history = run.outputs.history
    tables = sorted(key for key in history if key.startswith("iterations_"))
    if tables:  # the running table of the last iteration holds every row of the final one
        assert history[tables[-1]].get_dict()["rows"] == run.outputs.iterations.get_dict()["rows"]
    rows = history_rows(history)
    assessed = [row for row in final if row["iteration"] > 0]
    assert [row["iteration"] for row in rows] == [row["iteration"] for row in assessed]
    for row, expected in zip(rows, assessed, strict=True):
        for key, value in row.items():
            assert value == expected[key], (row["iteration"], key)
        assert {"n_training", "n_explored", "fraction_below_lo", "n_candidates", "converged"} <= set(row)


@pytest.mark.integration
def test_property_builders_equal_protocol_builders(finished_al_run, mofmlp_codes, serialize_builder):
    """The registry's builder of every offered property, from one signature, is that of the work chain's
    own get_builder_from_protocol called as the examples/ scripts call it on a loop's final ensemble; the
    app completes the loop's codes with setup's on the same computer."""
    from aiida import orm
    from aiida.plugins import WorkflowFactory

    from aiida_mofmlp.app.configure.model import available_properties
    from aiida_mofmlp.app.results import properties as props
    from aiida_mofmlp.workflows.functions.xtb import subset_frames
    from aiida_mofmlp.workflows.properties.registry import loaded_frame_index, property_builder
    from aiida_mofmlp.workflows.properties.selected import loop_codes

    run = finished_al_run
    labels = list(available_properties())
    assert labels, "no property work chain is installed"
    codes = props.property_codes(run, labels)
    loop = loop_codes(run)
    assert {"md", "deviation", "train", "raspa"} <= set(loop)
    assert codes["md"].pk == loop["md"].pk == mofmlp_codes["md"].pk
    assert codes["widom"].pk == mofmlp_codes["widom"].pk and codes["phonons"].pk == mofmlp_codes["phonons"].pk
    protocol = run.inputs.parameters.get_dict().get("protocol")
    assert protocol == run.base.extras.get("mofmlp")["protocol"]
    frames = run.outputs.history.starting_frames
    loaded = subset_frames(frames, orm.List([loaded_frame_index(frames)]))
    assert len(loaded) == 1 and (loaded.get_frame(0).arrays["guest_id"] > 0).any()

    structure, guest, models = run.inputs.structure, run.inputs.guest, dict(run.outputs.models)
    validation = run.outputs.validation_frames if "validation_frames" in run.outputs else None
    builders = {
        label: property_builder(
            label,
            structure,
            models,
            codes,
            protocol=protocol,
            guest=guest,
            loaded_frame=loaded,
            validation_frames=validation,
        )
        for label in labels
    }
    deviation = mofmlp_codes["deviation"]
    md, phonons, check_code = mofmlp_codes["md"], mofmlp_codes["phonons"], mofmlp_codes["reference"]
    adsorption_codes = {kind: mofmlp_codes.get(kind) for kind in ("md", "widom", "raspa", "xtb")}
    common = {"protocol": protocol}
    expected = {
        "adsorption": lambda cls: cls.get_builder_from_protocol(
            structure, models, {**adsorption_codes, "deviation": deviation}, guest=guest, **common
        ),
        "diffusion": lambda cls: cls.get_builder_from_protocol(
            loaded, models, {"md": md, "deviation": deviation}, **common
        ),
        "thermal expansion": lambda cls: cls.get_builder_from_protocol(
            structure, models, {"md": md, "deviation": deviation}, **common
        ),
        "melt-quench": lambda cls: cls.get_builder_from_protocol(
            structure, models, {"md": md, "deviation": deviation}, **common
        ),
        "phonons": lambda cls: cls.get_builder_from_protocol(
            structure, models, {"phonons": phonons, "deviation": deviation}, **common
        ),
        "model card": lambda cls: cls.get_builder_from_protocol(
            structure,
            models,
            {"phonons": phonons, "md": md, "deviation": deviation, "reference": check_code},
            guest=guest,
            validation_frames=validation,
            **common,
        ),
        "reference check": lambda cls: cls.get_builder_from_protocol(
            structure, models, {"reference": check_code}, validation_frames=validation, **common
        ),
    }
    for label, builder in builders.items():
        reference = expected[label](WorkflowFactory(available_properties()[label]))
        assert serialize_builder(builder) == serialize_builder(reference), label


@pytest.mark.integration
def test_no_daemon_submits_nothing(finished_al_run):
    from aiida_mofmlp.app.results import properties as props

    run = finished_al_run
    run.base.extras.set(props.PROPERTIES_EXTRA, ["phonons"])
    try:
        with pytest.raises(props.PropertyError, match="daemon"):
            props.submit_properties(run)
        assert props.RUNS_EXTRA not in run.base.extras.all
    finally:
        run.base.extras.delete(props.PROPERTIES_EXTRA)


#: run by `verdi run` in a process of its own (like the app's kernel, it sees the profile's broker): the
#: results model's refresh submits one PropertiesWorkChain, then the button and a direct call ask again
SUBMIT_TWICE = """
import json, sys
from aiida import orm
from aiida_mofmlp.app.results import properties as props
from aiida_mofmlp.app.results.model import ResultsModel

run = orm.load_node(int(sys.argv[1]))
results = ResultsModel()
results.load(run.pk)
calls = [(run.base.extras.get(props.RUNS_EXTRA, None), results.properties_note.splitlines())]
results.run_properties()
calls.append((run.base.extras.get(props.RUNS_EXTRA, None), results.properties_note.splitlines()))
calls.append((run.base.extras.get(props.RUNS_EXTRA, None), props.submit_properties(run)[1]))
print("RESULT " + json.dumps({"calls": calls}))
"""


@pytest.mark.integration
def test_submission_is_idempotent(finished_al_run, daemon_verdi, tmp_path):
    """With the daemon, on a loop that ran no properties: the results model's refresh submits one
    PropertiesWorkChain on its final ensemble, recorded in the loop's extras; the button, a direct call and
    another results model submit nothing more (the run is killed at once: its physics is tested with the
    work chains)."""
    import json

    from aiida import orm
    from aiida.manage import get_manager

    from aiida_mofmlp.app.results import properties as props
    from aiida_mofmlp.app.results.model import ResultsModel

    run = finished_al_run
    query = orm.QueryBuilder().append(
        orm.WorkflowNode, filters={"label": {"like": "properties on the final %"}}
    )
    before = query.count()
    run.base.extras.set(props.PROPERTIES_EXTRA, ["phonons"])
    script = tmp_path / "submit_twice.py"
    script.write_text(SUBMIT_TWICE)
    try:
        result = daemon_verdi("run", str(script), str(run.pk))
        lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
        assert lines, result.stdout + result.stderr[-3000:]
        calls = json.loads(lines[-1].removeprefix("RESULT "))["calls"]
        pk = calls[0][0]
        assert pk is not None and [extra for extra, _ in calls] == [pk, pk, pk]
        assert calls[0][1] == [f"submitted PropertiesWorkChain<{pk}> (phonons)"]
        assert calls[2][1] == []
        daemon_verdi("process", "kill", str(pk), "--timeout", "60")
        get_manager().get_profile_storage().get_session().expire_all()  # extras written by the other process
        assert run.base.extras.get(props.RUNS_EXTRA) == pk
        node = orm.load_node(pk)
        assert node.process_label == "PropertiesWorkChain" and node.inputs.properties.get_list() == [
            "phonons"
        ]
        assert node.inputs.trust_window.get_dict()["lo"] == run.outputs.iterations["trust"]["lo"]
        results = ResultsModel(figure_folder=tmp_path)
        results.load(run.pk)  # the poller's path: nothing new is submitted
        results.run_properties()  # nor by the button
        assert query.count() == before + 1
    finally:
        run.base.extras.delete(props.PROPERTIES_EXTRA)
        if props.RUNS_EXTRA in run.base.extras.all:
            run.base.extras.delete(props.RUNS_EXTRA)
