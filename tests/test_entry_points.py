"""Every entry point the package declares loads, and parsers share their CalcJob's name."""

from importlib.metadata import entry_points

import pytest

GROUPS = ["aiida.data", "aiida.calculations", "aiida.parsers", "aiida.workflows", "console_scripts"]


def _ours(group):
    return [ep for ep in entry_points(group=group) if ep.value.startswith("aiida_mofmlp")]


@pytest.mark.parametrize("group", GROUPS)
def test_entry_points_load(group):
    declared = _ours(group)
    assert declared, f"no aiida-mofmlp entry points in {group}"
    for entry_point in declared:
        assert entry_point.load() is not None, entry_point.name
    if group.startswith("aiida."):
        assert all(ep.name.startswith("mofmlp.") for ep in declared)


#: parsers of ours for CalcJobs of other plugins (selected with ``metadata.options.parser_name``)
EXTERNAL_PARSERS = {"mofmlp.cp2k": "cp2k", "mofmlp.raspa": "raspa"}


def test_each_calculation_has_a_parser_of_the_same_name():
    calculations = {ep.name for ep in _ours("aiida.calculations")}
    parsers = {ep.name for ep in _ours("aiida.parsers")}
    assert calculations == parsers - set(EXTERNAL_PARSERS)


@pytest.mark.parametrize(("parser", "calculation"), sorted(EXTERNAL_PARSERS.items()))
def test_external_parsers_extend_their_plugins_parser(parser, calculation):
    """``mofmlp.cp2k`` / ``mofmlp.raspa`` subclass the default parser of the CalcJob's plugin."""
    from aiida.plugins import CalculationFactory, ParserFactory

    default = CalculationFactory(calculation).spec().inputs["metadata"]["options"]["parser_name"].default
    assert issubclass(ParserFactory(parser), ParserFactory(default))
