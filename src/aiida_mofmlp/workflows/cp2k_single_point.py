"""A CP2K single point (energy, forces, optionally stress) that recovers from SCF and walltime failures."""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Mapping

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_
from aiida.plugins import CalculationFactory

from aiida_mofmlp.workflows import _cp2k_inputs as inputs_mod
from aiida_mofmlp.workflows._cp2k_labels import OUTPUT_FILENAME

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


class Cp2kSinglePointWorkChain(BaseRestartWorkChain):
    """Run a CP2K single point and repair the common failures.

    Handlers (highest priority first):

    * walltime (CP2K stopped by its GLOBAL/WALLTIME, or the job was killed before CP2K ended):
      restart from the last wavefunction in the parent folder;
    * SCF not converged (exit status 450, or CP2K's warning "SCF run NOT converged", which CP2K 2023.1
      prints without stopping): up to three stages of stronger settings (:data:`SCF_STAGES`):
      more steps from the last wavefunction, then diagonalisation + smearing + Broyden mixing from an
      atomic guess, then heavier damping;
    * a finished calculation whose output lacks the energy or forces is a failure.

    Every calculation's output is checked for SCF convergence, so an unconverged SCF never produces labels.
    """

    _process_class = Cp2kCalculation

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(Cp2kCalculation, namespace="cp2k", exclude=("pseudos_upf",))
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
        spec.expose_outputs(Cp2kCalculation)
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
        overrides: Mapping | None = None,
        compute_stress: bool = False,
        options: Mapping | None = None,
    ):
        """A builder for ``structure`` with CP2K protocol ``protocol`` (see protocols/cp2k.yaml).

        ``overrides`` is deep-merged into the protocol (``parameters``, ``kinds``, ``options``, ...);
        ``options`` are merged into the CalcJob options. Raises ValueError when an element of the
        structure has no basis set/pseudopotential in the protocol.
        """
        settings = inputs_mod.get_protocol(protocol, overrides)
        elements = {kind.symbol for kind in structure.kinds}
        parameters = inputs_mod.build_parameters(settings, elements, compute_stress=compute_stress)
        builder = cls.get_builder()
        builder.cp2k.code = code
        builder.cp2k.structure = structure
        builder.cp2k.parameters = orm.Dict(parameters)
        builder.cp2k.metadata.options = options_for_code(code, deep_merge_options(settings, options))
        builder.max_iterations = orm.Int(settings.get("max_iterations", 5))
        builder.walltime_fraction = orm.Float(settings.get("walltime_fraction", 0.9))
        return builder

    # --- outline -------------------------------------------------------------------------------------
    def setup(self):
        """Prepare the inputs of the first calculation and the handler state."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(Cp2kCalculation, "cp2k"))
        parameters = self.ctx.inputs.parameters.get_dict()
        walltime = self.ctx.inputs.metadata.get("options", {}).get("max_wallclock_seconds")
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
        """Attach the outputs of the last calculation (and its parameters when they changed)."""
        result = super().results()
        if result is not None and result.status != 0:
            return result
        if self.ctx.parameters != self.ctx.initial_parameters:
            self.out("final_parameters", self.ctx.inputs.parameters)
        return result

    # --- helpers -------------------------------------------------------------------------------------
    @staticmethod
    def _read_output(calculation) -> dict | None:
        try:
            retrieved = calculation.outputs.retrieved
            text = retrieved.base.repository.get_object_content(OUTPUT_FILENAME)
        except Exception:  # no retrieved folder or no output file: nothing to parse
            return None
        return inputs_mod.parse_single_point(text)

    def _restart_from(self, calculation) -> None:
        self.ctx.inputs.parent_calc_folder = calculation.outputs.remote_folder

    # --- handlers ------------------------------------------------------------------------------------
    @process_handler(priority=600)
    def handle_walltime(self, calculation):
        """CP2K stopped at its walltime, or the job ended before CP2K did: restart from the wavefunction."""
        parsed = self._read_output(calculation)
        walltime_code = calculation.exit_status == Cp2kCalculation.exit_codes.ERROR_OUT_OF_WALLTIME.status
        incomplete = calculation.exit_status == Cp2kCalculation.exit_codes.ERROR_OUTPUT_INCOMPLETE.status
        if not (walltime_code or incomplete or (parsed and parsed["walltime_exceeded"])):
            return None
        if "remote_folder" not in calculation.outputs:
            return ProcessHandlerReport(
                True,
                self.exit_codes.ERROR_UNRECOVERABLE_FAILURE.format(message="walltime and no remote folder"),
            )
        self._restart_from(calculation)
        self.ctx.parameters = inputs_mod.add_wavefunction_restart(self.ctx.parameters)
        self.report(
            f"{calculation.process_label}<{calculation.pk}> ran out of time: restarting from its wavefunction"
        )
        return ProcessHandlerReport(True)

    @process_handler(priority=500)
    def handle_scf_not_converged(self, calculation):
        """SCF not converged: escalate to the next stage of stronger SCF settings."""
        parsed = self._read_output(calculation)
        scf_code = calculation.exit_status == Cp2kCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED.status
        if not (scf_code or (parsed is not None and not parsed["scf_converged"])):
            return None
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
        text = ""
        with contextlib.suppress(Exception):  # no output to read the reason from
            text = calculation.outputs.retrieved.base.repository.get_object_content(OUTPUT_FILENAME)
        message = f"CP2K aborted: {abort_message(text)}" if abort_message(text) else "CP2K aborted"
        return ProcessHandlerReport(True, self.exit_codes.ERROR_UNRECOVERABLE_FAILURE.format(message=message))

    @process_handler(priority=100)
    def check_labels(self, calculation):
        """A calculation that finished without error must have printed the energy and the forces."""
        if not calculation.is_finished_ok:
            return None
        parsed = self._read_output(calculation)
        if parsed is None or parsed["energy"] is None or parsed["forces"] is None:
            return ProcessHandlerReport(True, self.exit_codes.ERROR_NO_LABELS)
        return None


def abort_message(text: str) -> str:
    """The message of CP2K's ``[ABORT]`` box in an output (the text right of the ASCII art), or ''."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "[ABORT]" in line), None)
    if start is None:
        return ""
    words = []
    for line in lines[start + 1 :]:
        if set(line.strip()) <= {"*"}:
            break
        words.extend(word for word in line[20:].strip(" *").split() if not re.fullmatch(r"\w+\.F:\d+", word))
    return " ".join(words)[:300]


def deep_merge_options(settings: Mapping, options: Mapping | None) -> dict:
    """The protocol's CalcJob options with ``options`` deep-merged in."""
    return inputs_mod.deep_merge(settings.get("options") or {}, options or {})
