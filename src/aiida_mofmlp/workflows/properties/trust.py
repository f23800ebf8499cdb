"""The ensemble's trust in a property run, shared by every property work chain.

A property (isotherm, diffusion coefficient, phonons, ...) computed with model 0 of an ensemble is only as
good as the model on the frames that the property run visited. Each property work chain therefore hands its
trajectories to :meth:`PropertyTrustMixin.run_trust`: the whole ensemble is evaluated on them
(:class:`~aiida_mofmlp.workflows.mace.deviation.DeviationBaseWorkChain`), and
:meth:`PropertyTrustMixin.inspect_trust` emits

* ``trust`` (Dict): per trajectory and in all, the number of frames and the fractions with sigma_max above
  ``lo`` and above ``hi`` (eV/Angstrom), with the levels used;
* ``untrusted_frames`` (StructureSetData): the frames above ``lo``, predictions stripped and tagged with
  ``source = "property:<trajectory>"``. ``ActiveLearningWorkChain`` accepts them as ``extra_candidates``,
  so property runs feed the next round of the loop.

With a single model, or without the ``deviation`` inputs (the code), ``trust`` says ``assessed: False`` and
why; the property itself is still computed.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiida import orm
from aiida.engine import ToContext

from aiida_mofmlp.common.protocols import deep_merge
from aiida_mofmlp.common.trust import DEFAULT_TRUST, TrustWindow
from aiida_mofmlp.data.structure_set import StructureSetData
from aiida_mofmlp.workflows.functions.trust import summarise_trust, trust_not_assessed
from aiida_mofmlp.workflows.mace.deviation import DeviationBaseWorkChain

#: default trust levels (eV/Angstrom): :data:`aiida_mofmlp.common.trust.DEFAULT_TRUST`; pass the loop's own
#: levels when it used others
TRUST_DEFAULTS = DEFAULT_TRUST.as_dict()
#: prefix of the context keys of the deviation runs
_CONTEXT_PREFIX = "trust_"


def validate_trust_window(levels: orm.Dict, _ctx=None) -> str | None:
    """A trust window (:class:`~aiida_mofmlp.common.trust.TrustWindow`): ``0 < lo < hi``, optional groups."""
    return TrustWindow.problem(levels.get_dict(), "trust_window")


def define_trust_spec(spec) -> None:
    """Add inputs ``trust_window`` and ``deviation``, outputs ``trust`` and ``untrusted_frames``."""
    spec.input(
        "trust_window",
        valid_type=orm.Dict,
        default=lambda: orm.Dict(TRUST_DEFAULTS),
        validator=validate_trust_window,
        help="sigma_max levels in eV/Angstrom: `lo` (below: trusted) and `hi` (above: unphysical).",
    )
    spec.expose_inputs(
        DeviationBaseWorkChain,
        namespace="deviation",
        exclude=("deviation.frames", "deviation.models"),
        namespace_options={
            "required": False,
            "populate_defaults": False,
            "help": "The ensemble-deviation job run on the property's trajectories (its code and options); "
            "without it the trust is not assessed.",
        },
    )
    # always emitted by `inspect_trust`; not `required` so that a restart work chain's `results` step, which
    # copies its CalcJob's outputs, does not report it missing there
    spec.output(
        "trust", valid_type=orm.Dict, required=False, help="Fractions of property frames above lo and hi."
    )
    spec.output(
        "untrusted_frames",
        valid_type=StructureSetData,
        required=False,
        help="Property frames with sigma_max above lo: extra candidates for ActiveLearningWorkChain.",
    )


def fill_trust_inputs(
    builder,
    code: orm.AbstractCode | None,
    protocol: str | None = None,
    options: dict | None = None,
    levels: Mapping | None = None,
) -> None:
    """Fill ``builder.deviation`` (from :class:`DeviationBaseWorkChain`'s protocol) and ``trust_window``.

    A single model has no deviation to compute: ``code`` is then left out."""
    if levels is not None:
        builder.trust_window = orm.Dict({**TRUST_DEFAULTS, **dict(levels)})
    if code is None or len(builder.get("models", {}) or {}) < 2:
        return
    inputs = DeviationBaseWorkChain.get_protocol_inputs(protocol)
    builder.deviation.max_iterations = orm.Int(inputs["max_iterations"])
    builder.deviation.deviation.code = code
    builder.deviation.deviation.parameters = orm.Dict(inputs["deviation"]["parameters"])
    default_options = inputs["deviation"]["metadata"]["options"]
    builder.deviation.deviation.metadata.options = deep_merge(default_options, options)


class PropertyTrustMixin:
    """Mix into a property work chain that has a ``models`` namespace and called :func:`define_trust_spec`."""

    def trust_skip_reason(self) -> str | None:
        """Why the trust cannot be assessed (one model, no deviation code), or None."""
        n_models = len(self.inputs.get("models", {}))
        if n_models < 2:
            return f"the ensemble has {n_models} model(s); trust needs at least 2"
        if "deviation" not in self.inputs or "code" not in self.inputs.deviation.get("deviation", {}):
            return "no `deviation` inputs (code of mofmlp-deviation) were given"
        return None

    def run_trust(self, trajectories: Mapping[str, StructureSetData]):
        """Submit one DeviationBaseWorkChain per trajectory (skipped, with a report, when not possible)."""
        self.ctx.trust_keys = []
        reason = self.trust_skip_reason()
        if reason is not None:
            self.report(f"trust not assessed: {reason}")
            return None
        running = {}
        for key, frames in trajectories.items():
            inputs = self.exposed_inputs(DeviationBaseWorkChain, namespace="deviation")
            models = dict(self.inputs.models)
            inputs["deviation"] = {**inputs["deviation"], "frames": frames, "models": models}
            inputs["metadata"] = {"call_link_label": f"trust_{key}"}
            running[f"{_CONTEXT_PREFIX}{key}"] = self.submit(DeviationBaseWorkChain, **inputs)
            self.ctx.trust_keys.append(key)
            self.ctx[f"{_CONTEXT_PREFIX}frames_{key}"] = frames
        self.report(f"trust: ensemble deviation on {len(running)} trajectories")
        return ToContext(**running)

    def inspect_trust(self) -> None:
        """Emit ``trust`` and ``untrusted_frames`` from the finished deviation runs."""
        keys = self.ctx.get("trust_keys", [])
        if not keys:
            reason = self.trust_skip_reason() or "no trajectories"
            self.out("trust", trust_not_assessed(orm.Str(reason)))
            return
        nodes = {}
        failed = []
        for key in keys:
            child = self.ctx[f"{_CONTEXT_PREFIX}{key}"]
            if not child.is_finished_ok:
                failed.append(f"{key} ({child.process_label}<{child.pk}> exit {child.exit_status})")
                continue
            nodes[f"frames_{key}"] = self.ctx[f"{_CONTEXT_PREFIX}frames_{key}"]
            nodes[f"deviation_{key}"] = child.outputs.deviation
        if failed:
            self.report(f"trust: deviation failed for {', '.join(failed)}; those trajectories are left out")
        if not nodes:
            self.out("trust", trust_not_assessed(orm.Str(f"every deviation run failed: {', '.join(failed)}")))
            return
        results = summarise_trust(self.inputs.trust_window, **nodes)
        self.out("trust", results["trust"])
        if "untrusted_frames" in results:
            self.out("untrusted_frames", results["untrusted_frames"])
        overall = results["trust"]["all"]
        self.report(
            f"trust: {overall['n_frames']} frames, {100 * overall['fraction_above_lo']:.1f} % above lo, "
            f"{100 * overall['fraction_above_hi']:.1f} % above hi"
        )
