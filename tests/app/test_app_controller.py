"""Headless tests of the app's controller and views (widgets without a browser)."""

from __future__ import annotations

import html

import pytest


@pytest.fixture(scope="module")
def app(aiida_profile):
    """One app for the module (building it takes seconds); the tests run in file order."""
    import os

    from aiida_mofmlp.app import MofMlpApp
    from aiida_mofmlp.cli.setup import ensure_codes, ensure_localhost

    ensure_codes(ensure_localhost())
    previous = os.environ.get("MOFMLP_PROFILE")
    os.environ["MOFMLP_PROFILE"] = aiida_profile.name
    app = MofMlpApp()
    try:
        yield app
    finally:
        app.results_view.stop_following()
        if previous is None:
            os.environ.pop("MOFMLP_PROFILE")
        else:
            os.environ["MOFMLP_PROFILE"] = previous


def test_app_has_the_five_steps(app):
    from aiida_mofmlp.app.controller.app import STEPS

    assert [app.steps.get_title(index) for index in range(len(app.steps.children))] == list(STEPS)
    assert "mofmlp-footer" in app.children[-1]._dom_classes
    assert app.profile in app.children[-1].value


def test_structure_view_shows_refusal_then_structure(app):
    view, model = app.structure_view, app.structure_model
    view._run(lambda: model.load_upload("broken.cif", b"\x00 not a CIF"))
    assert "broken.cif was not accepted" in view.errors.value
    assert "Traceback" not in view.errors.value
    view._run(lambda: model.load_raspa_framework("ZnBDCdabco"))
    assert view.errors.value == ""
    assert "C22H20N2O8Zn2 (54 atoms)" in view.summary.value


def test_structure_intake_runs_beside_the_kernel_one_at_a_time(app):
    view, model = app.structure_view, app.structure_model
    job = view._start(model.raspa_framework_path("ZnBDCdabco"))
    assert job is not None and job.thread.name == "mofmlp-intake"
    # until the outcome is accepted in the profile's thread: controls off, a second choice refused
    assert model.busy == "ZnBDCdabco.cif" and "Reading ZnBDCdabco.cif" in view.summary.value
    assert view.upload.disabled and view.library_button.disabled
    assert view._start(model.raspa_framework_path("IRMOF-1")) is None
    assert model.errors == ["still reading ZnBDCdabco.cif; choose again when it has finished"]
    job.wait(120)
    assert job.finished and model.busy == ""
    assert not view.upload.disabled and not view.library_button.disabled
    assert model.errors == [] and "C22H20N2O8Zn2 (54 atoms)" in view.summary.value
    model.structure.store()  # the node was made in this thread: it can be stored (submission does)
    assert model.structure.pk is not None


def test_configure_view_validates_live(app):
    app.structure_model.load_raspa_framework("ZnBDCdabco")
    app.configure_model.apply_preset("tiny")
    assert "Settings are valid" in app.configure_view.validation.value
    app.configure_model.temperatures = "warm"
    assert "temperatures 'warm'" in html.unescape(app.configure_view.validation.value)


def test_submit_view_blocks_without_daemon(app):
    app.structure_model.load_raspa_framework("ZnBDCdabco")
    app.submit_view.render()
    assert "daemon" in app.submit_view.blockers.value
    app.submit_view._submit(None)
    assert "Not submitted" in app.submit_view.message.value
    assert app.steps.selected_index == 0  # stays where it was


def test_unknown_profile_is_a_message(aiida_profile, monkeypatch):
    from aiida_mofmlp.app import MofMlpApp

    monkeypatch.setenv("MOFMLP_PROFILE", "no-such-profile")
    app = MofMlpApp()
    text = app.children[-1].value
    assert "starting the app failed" in text and "no-such-profile" in text
    from aiida import load_profile

    load_profile(aiida_profile.name, allow_switch=True)
