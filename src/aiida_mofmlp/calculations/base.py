"""Common base of the CalcJobs that run an aiida-mofmlp engine (one input file in, files out)."""

from __future__ import annotations

import json

import yaml
from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_mofmlp.data.mace_model import MaceModelData
from aiida_mofmlp.engines.io import STDERR_FILENAME
from aiida_mofmlp.engines.mace.safe_model import MODEL_HASHES_FILE


def engine_threads(resources: dict) -> int | None:
    """Threads per engine process from a job's resources: ``num_cores_per_mpiproc``, else the machine's
    ``num_cores_per_machine`` shared by its ``num_mpiprocs_per_machine``; None when neither is given."""
    per_process = resources.get("num_cores_per_mpiproc")
    if per_process:
        return max(1, int(per_process))
    per_machine = resources.get("num_cores_per_machine")
    if per_machine:
        return max(1, int(per_machine) // max(1, int(resources.get("num_mpiprocs_per_machine") or 1)))
    return None


class EngineCalculation(CalcJob):
    """Runs ``<engine> <input file>`` in serial; subclasses add ports, outputs and their own exit codes.

    Exit codes shared by every engine: 300 ``ERROR_MISSING_OUTPUT``, 301 ``ERROR_UNREADABLE_OUTPUT``,
    302 ``ERROR_INVALID_INPUT`` (the engine refused its input), each formatted with ``detail``.
    """

    #: entry point of the parser; the input file is JSON or YAML according to ``INPUT_FILENAME``
    PARSER_NAME: str = ""
    INPUT_FILENAME = "input.json"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        options = spec.inputs["metadata"]["options"]
        options["parser_name"].default = cls.PARSER_NAME
        options["input_filename"].default = cls.INPUT_FILENAME
        options["output_filename"].default = "stdout.txt"
        options["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
        options["withmpi"].default = False
        spec.exit_code(
            300, "ERROR_MISSING_OUTPUT", message="An output file of the engine is missing: {detail}"
        )
        spec.exit_code(301, "ERROR_UNREADABLE_OUTPUT", message="An output file could not be read: {detail}")
        spec.exit_code(302, "ERROR_INVALID_INPUT", message="The engine rejected its input: {detail}")

    def write_input_file(self, folder, config: dict) -> None:
        """Write the engine's input file (YAML for ``*.yaml``/``*.yml``, JSON otherwise) into ``folder``."""
        filename = self.options.input_filename
        with folder.open(filename, "w", encoding="utf8") as handle:
            if filename.endswith((".yaml", ".yml")):
                yaml.safe_dump(config, handle, sort_keys=False)
            else:
                json.dump(config, handle, indent=1)

    def engine_calcinfo(
        self, folder, local_copy_list: list, retrieve_list: list[str]
    ) -> datastructures.CalcInfo:
        """CalcInfo running the code on the input file; retrieves stdout, stderr and ``retrieve_list``.

        The SHA-256 of every model copied in goes to ``model_hashes.json`` beside it: the engine checks each
        model file against it before loading (:func:`aiida_mofmlp.engines.mace.common.load_model`). When the
        resources name cores per process (or per machine), ``OMP_NUM_THREADS`` is set to that number after
        the code's own prepend text (:func:`engine_threads`): torch, tblite and LAMMPS use what the job was
        given, never more; without them the engines keep their default of one thread.
        """
        hashes = {}
        for uuid, _, target in local_copy_list:
            node = orm.load_node(uuid)
            if isinstance(node, MaceModelData) and node.sha256:
                hashes[target] = node.sha256
        if hashes:
            with folder.open(MODEL_HASHES_FILE, "w", encoding="utf8") as handle:
                json.dump(hashes, handle, indent=1)
        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = [self.options.input_filename]
        codeinfo.stdout_name = self.options.output_filename
        codeinfo.stderr_name = STDERR_FILENAME
        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = local_copy_list
        calcinfo.retrieve_list = [self.options.output_filename, STDERR_FILENAME, *retrieve_list]
        threads = engine_threads(dict(self.options.resources or {}))
        if threads is not None:
            calcinfo.prepend_text = f"export OMP_NUM_THREADS={threads}  # from the job's resources"
        return calcinfo
