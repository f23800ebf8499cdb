"""A CP2K single point (energy, forces, optionally stress) that recovers from SCF and walltime failures."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_
from aiida.plugins import CalculationFactory

from aiida_mofmlp.workflows.cp2k import inputs as inputs_mod
from aiida_mofmlp.workflows.cp2k.inputs import PARSER_NAME, Cp2kProtocolMixin
from aiida_mofmlp.workflows.restart import expose_calcjob_outputs

Cp2kCalculation = CalculationFactory("cp2k")


def _walltime_string(seconds: float) -> str:
    seconds = max(int(seconds), 1)
    return f"{seconds // 3600:02d}:{(seconds % 3600) // 60:02d}:{seconds % 60:02d}"


def options_for_code(code: orm.AbstractCode, options: Mapping | None) -> dict:
    """CalcJob options with ``withmpi`` following the code's own setting when it has one."""
    options = copy.deepcopy(dict(options or {}))
    with_mpi = getattr(code, "with_mpi", None)
    if with_mpi is not None:
        options["withmpi"] = bool(with_mpi)
    return options


def deep_merge_options(settings: Mapping, options: Mapping | None) -> dict:
    """The protocol's CalcJob options with ``options`` deep-merged in."""
    return inputs_mod.deep_merge(settings.get("options") or {}, options or {})


class Cp2kSinglePointWorkChain(Cp2kProtocolMixin, BaseRestartWorkChain):
    """Run a CP2K single point and repair the common failures.

    The calculations use the ``mofmlp.cp2k`` parser, which turns CP2K's output into ``labels`` (energy,
    forces, stress in eV units) and every failure into an exit code of ``Cp2kCalculation``; the handlers
    (highest priority first) key on those exit codes only:

    * walltime (400, CP2K stopped at its GLOBAL/WALLTIME), incomplete output (303, the job was killed before
      CP2K ended: the scheduler's time limit, ``scancel``, a node lost) or the scheduler's own walltime code
      (120): restart from the last wavefunction in the parent folder with ``defaults["walltime_factor"]``
      times the job's ``max_wallclock_seconds`` (and CP2K's GLOBAL/WALLTIME scaled with it);
    * the job was lost before CP2K wrote its output (210: cancelled or its node went down before CP2K
      started) or the scheduler reported a node failure (140): resubmit unchanged, once;
    * SCF not converged (450; CP2K 2023.1 only warns "SCF run NOT converged", the parser fails the run):
      up to three stages of stronger settings (:data:`~aiida_mofmlp.workflows.cp2k.inputs.SCF_STAGES`):
      more steps from the last wavefunction, then diagonalisation + smearing + Broyden mixing from an
      atomic guess, then heavier damping;
    * CP2K aborted (304): not repairable, the work chain fails with CP2K's reason;
    * the run finished without energy or forces (302): the work chain fails with ERROR_NO_LABELS.
    """

    _process_class = Cp2kCalculation
    _protocol_file = inputs_mod.PROTOCOL_FILE

    #: tunable handler settings: each walltime restart multiplies the job's walltime by ``walltime_factor``
    defaults = {"walltime_factor": 2.0}

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(Cp2kCalculation, namespace="cp2k", exclude=("pseudos_upf",))
        spec.inputs["cp2k"]["metadata"]["options"]["parser_name"].default = PARSER_NAME
        spec.input(
            "walltime_fraction",
            valid_type=orm.Float,
            default=lambda: orm.Float(0.9),
            help="CP2K's GLOBAL/WALLTIME as a fraction of metadata.options.max_wallclock_seconds, so that "
            "CP2K stops cleanly and leaves a wavefunction to restart from.",
        )
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.run_process, cls.inspect_process),
            cls.results,
        )
        expose_calcjob_outputs(spec, Cp2kCalculation)
        spec.output(
            "labels",
            valid_type=orm.ArrayData,
            required=False,
            help="Energy (attribute, eV), forces (eV/Angstrom) and stress (eV/Angstrom^3) of the last "
            "calculation.",
        )
        spec.output("energy", valid_type=orm.Float, required=False, help="The energy in eV.")
        spec.output(
            "resp_charges",
            valid_type=orm.ArrayData,
            required=False,
            help="Charges (e) of CP2K's &RESP (REPEAT/RESP) fit, when the calculation retrieved its file.",
        )
        spec.output(
            "final_parameters",
            valid_type=orm.Dict,
            required=False,
            help="The CP2K input of the last calculation, when the handlers changed it.",
        )
        spec.exit_code(
            350,
            "ERROR_UNRECOVERABLE_FAILURE",
            message="CP2K failed with an error the handlers cannot repair: {message}",
        )
        spec.exit_code(
            450,
            "ERROR_SCF_NOT_CONVERGED",
            message="the SCF did not converge after all {stages} stages of stronger settings",
        )
        spec.exit_code(
            460,
            "ERROR_NO_LABELS",
            message="the calculation finished but its output has no energy or no forces",
        )

    # --- protocol ------------------------------------------------------------------------------------
    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        structure: orm.StructureData,
        protocol: str | None = None,
        overrides: Mapping | str | os.PathLike | None = None,
        compute_stress: bool = False,
        options: Mapping | None = None,
    ):
        """A builder for ``structure`` with CP2K protocol ``protocol`` (see protocols/cp2k.yaml).

        ``overrides`` (a dict or the path of a YAML file) is deep-merged into the protocol (``parameters``,
        ``kinds``, ``options``, ``max_iterations``, ...); ``options`` are merged into the CalcJob options.
        Raises ValueError when an element of the structure has no basis set/pseudopotential in the protocol.
        """
        settings = cls.get_protocol_inputs(protocol, overrides)
        elements = {kind.symbol for kind in structure.kinds}
        parameters = inputs_mod.build_parameters(settings, elements, compute_stress=compute_stress)
        builder = cls.get_builder()
        builder.cp2k.code = code
        builder.cp2k.structure = structure
        builder.cp2k.parameters = orm.Dict(parameters)
        builder.cp2k.metadata.options = options_for_code(code, deep_merge_options(settings, options))
        builder.max_iterations = orm.Int(settings["max_iterations"])
        builder.walltime_fraction = orm.Float(settings["walltime_fraction"])
        return builder

    # --- outline -------------------------------------------------------------------------------------
    def setup(self):
        """Prepare the inputs of the first calculation (parser ``mofmlp.cp2k``) and the handler state."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(Cp2kCalculation, "cp2k"))
        metadata = dict(self.ctx.inputs.get("metadata") or {})
        options = dict(metadata.get("options") or {})
        options.setdefault("parser_name", PARSER_NAME)
        metadata["options"] = options
        self.ctx.inputs.metadata = metadata
        parameters = self.ctx.inputs.parameters.get_dict()
        walltime = options.get("max_wallclock_seconds")
        if walltime and "WALLTIME" not in parameters.get("GLOBAL", {}):
            parameters.setdefault("GLOBAL", {})["WALLTIME"] = _walltime_string(
                walltime * self.inputs.walltime_fraction.value
            )
        self.ctx.parameters = parameters
        self.ctx.initial_parameters = copy.deepcopy(parameters)
        self.ctx.xtb = inputs_mod.is_xtb(parameters)
        self.ctx.scf_stage = 0

    def run_process(self):
        """Run the next calculation with the current parameters."""
        self.ctx.inputs.parameters = orm.Dict(self.ctx.parameters)
        return super().run_process()

    def results(self):
        """Attach the outputs and labels of the last calculation (and its parameters when they changed)."""
        result = super().results()
        if result is not None and result.status != 0:
            return result
        calculation = self.ctx.children[self.ctx.iteration - 1]
        if "labels" not in calculation.outputs:
            return self.exit_codes.ERROR_NO_LABELS
        # the parser's dynamic outputs, not in Cp2kCalculation's spec
        for name in ("labels", "energy", "resp_charges"):
            if name in calculation.outputs:
                self.out(name, calculation.outputs[name])
        if self.ctx.parameters != self.ctx.initial_parameters:
            self.out("final_parameters", self.ctx.inputs.parameters)
        return result

    # --- helpers -------------------------------------------------------------------------------------
    def _restart_from(self, calculation) -> None:
        self.ctx.inputs.parent_calc_folder = calculation.outputs.remote_folder

    def _extend_walltime(self) -> int | None:
        """Multiply the job's walltime by ``defaults["walltime_factor"]``; returns the new one (s), if any.

        CP2K's GLOBAL/WALLTIME follows when it was derived from the job's walltime (``walltime_fraction``).
        """
        options = dict(self.ctx.inputs.metadata.get("options") or {})
        walltime = options.get("max_wallclock_seconds")
        if not walltime:
            return None
        fraction = self.inputs.walltime_fraction.value
        extended = int(walltime * self.defaults["walltime_factor"])
        options["max_wallclock_seconds"] = extended
        self.ctx.inputs.metadata = {**self.ctx.inputs.metadata, "options": options}
        cp2k_global = self.ctx.parameters.get("GLOBAL", {})
        if cp2k_global.get("WALLTIME") == _walltime_string(walltime * fraction):
            cp2k_global["WALLTIME"] = _walltime_string(extended * fraction)
        return extended

    # --- handlers ------------------------------------------------------------------------------------
    @process_handler(
        priority=600,
        exit_codes=[
            Cp2kCalculation.exit_codes.ERROR_OUT_OF_WALLTIME,
            Cp2kCalculation.exit_codes.ERROR_OUTPUT_INCOMPLETE,
            Cp2kCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME,
        ],
    )
    def handle_walltime(self, calculation):
        """CP2K stopped at its walltime, or the job ended before CP2K did: restart from the wavefunction
        with more time."""
        if "remote_folder" not in calculation.outputs:
            return ProcessHandlerReport(
                True,
                self.exit_codes.ERROR_UNRECOVERABLE_FAILURE.format(message="walltime and no remote folder"),
            )
        self._restart_from(calculation)
        self.ctx.parameters = inputs_mod.add_wavefunction_restart(self.ctx.parameters)
        extended = self._extend_walltime()
        more_time = f" with a walltime of {extended} s" if extended else ""
        self.report(
            f"{calculation.process_label}<{calculation.pk}> ran out of time or was stopped "
            f"(exit status {calculation.exit_status}): restarting from its wavefunction{more_time}"
        )
        return ProcessHandlerReport(True)

    @process_handler(
        priority=590,
        exit_codes=[
            Cp2kCalculation.exit_codes.ERROR_SCHEDULER_NODE_FAILURE,
            Cp2kCalculation.exit_codes.ERROR_OUTPUT_MISSING,
        ],
    )
    def handle_lost_job(self, calculation):
        """The job died before CP2K wrote its output (cancelled or its node lost before it started), or the
        scheduler reported a node failure: resubmit it unchanged, once; twice in a row is unrecoverable."""
        previous = self.ctx.children[-2] if len(self.ctx.children) > 1 else None
        if previous is not None and previous.exit_status == calculation.exit_status:
            message = f"the job was lost twice in a row ({calculation.exit_message})"
            return ProcessHandlerReport(
                True, self.exit_codes.ERROR_UNRECOVERABLE_FAILURE.format(message=message)
            )
        self.report(
            f"{calculation.process_label}<{calculation.pk}> was lost before CP2K wrote its output "
            f"(exit status {calculation.exit_status}): resubmitting it unchanged"
        )
        return ProcessHandlerReport(True)

    @process_handler(priority=500, exit_codes=[Cp2kCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED])
    def handle_scf_not_converged(self, calculation):
        """SCF not converged: escalate to the next stage of stronger SCF settings."""
        stages = inputs_mod.SCF_STAGES
        if self.ctx.scf_stage >= len(stages):
            self.report(
                f"SCF of {calculation.process_label}<{calculation.pk}> not converged after all stages"
            )
            return ProcessHandlerReport(
                True, self.exit_codes.ERROR_SCF_NOT_CONVERGED.format(stages=len(stages))
            )
        self.ctx.scf_stage += 1
        if "remote_folder" in calculation.outputs:
            self._restart_from(calculation)
        self.ctx.parameters = inputs_mod.escalate_scf(
            self.ctx.parameters, self.ctx.scf_stage, xtb=self.ctx.xtb
        )
        self.report(
            f"SCF of {calculation.process_label}<{calculation.pk}> not converged: "
            f"stage {self.ctx.scf_stage}, {stages[self.ctx.scf_stage - 1]}"
        )
        return ProcessHandlerReport(True)

    @process_handler(priority=400, exit_codes=[Cp2kCalculation.exit_codes.ERROR_OUTPUT_CONTAINS_ABORT])
    def handle_abort(self, calculation):
        """CP2K aborted (bad input, odd electron count, ...): not repairable by a restart."""
        message = calculation.exit_message or "CP2K aborted"
        self.report(f"{calculation.process_label}<{calculation.pk}>: {message}")
        return ProcessHandlerReport(True, self.exit_codes.ERROR_UNRECOVERABLE_FAILURE.format(message=message))

    @process_handler(priority=100, exit_codes=[Cp2kCalculation.exit_codes.ERROR_OUTPUT_PARSE])
    def handle_missing_labels(self, calculation):
        """The run finished but its output lacks the energy or the forces: no labels, no retry."""
        self.report(f"{calculation.process_label}<{calculation.pk}>: {calculation.exit_message}")
        return ProcessHandlerReport(True, self.exit_codes.ERROR_NO_LABELS)
