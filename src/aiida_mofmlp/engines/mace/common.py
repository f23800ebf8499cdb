"""Private helpers shared by the MACE engines: input files, species, device, running ``mace_run_train``.

No AiiDA imports. ``mace`` is imported lazily (importing it costs seconds).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ase.data import atomic_numbers, chemical_symbols

from aiida_mofmlp.common.errors import InputError

#: exit status of the training engines when the loss became NaN/inf (training diverged)
EXIT_DIVERGED = 3
#: exit status when the inputs are invalid (before anything runs)
EXIT_BAD_INPUT = 2
#: exit status when mace_run_train failed for another reason
EXIT_MACE_FAILED = 4


def to_numbers(species: Iterable[str | int]) -> list[int]:
    """Atomic numbers from symbols or numbers, sorted and unique; a clear error for unknown symbols."""
    numbers = set()
    for item in species:
        if isinstance(item, str) and not item.isdigit():
            if item not in atomic_numbers:
                raise InputError(f"species {item!r} is not a chemical symbol")
            numbers.add(atomic_numbers[item])
        else:
            value = int(item)
            if not 0 < value < len(chemical_symbols):
                raise InputError(
                    f"species {item!r} is not a valid atomic number (1..{len(chemical_symbols) - 1})"
                )
            numbers.add(value)
    return sorted(numbers)


def to_symbols(numbers: Iterable[int]) -> list[str]:
    """Chemical symbols of atomic numbers."""
    return [chemical_symbols[int(z)] for z in numbers]


def species_in_file(path: str | Path) -> list[int]:
    """Sorted atomic numbers present in an extxyz file."""
    from aiida_mofmlp.common.frames import iter_frames

    numbers: set[int] = set()
    for atoms in iter_frames(path):
        numbers.update(int(z) for z in atoms.numbers)
    return sorted(numbers)


def model_species(model_path: str | Path) -> list[int]:
    """Atomic numbers a MACE model in the safe form knows (read from its JSON, no model built)."""
    from aiida_mofmlp.engines.mace.safe_model import describe_safe_model

    path = Path(model_path)
    if not path.is_file():
        raise InputError(f"MACE model file {path} does not exist")
    return sorted(atomic_numbers[symbol] for symbol in describe_safe_model(path)["species"])


def load_model(path: str | Path, device: str = "cpu", trusted: bool = False, sha256: str | None = None):
    """Load a MACE model; by default only the safe form (``weights_only=True``, see :mod:`.safe_model`).

    A pickled ``.model`` is unpickled only with ``trusted=True`` (a file this process wrote itself, e.g.
    mace's own training output); otherwise :class:`~.safe_model.UntrustedModelError`. ``sha256``, when
    given, must be the file's hash.
    """
    from aiida_mofmlp.engines.mace.safe_model import UntrustedModelError, load_pickled_model, load_safe_model

    path = Path(path)
    if not path.is_file():
        raise InputError(f"MACE model file {path} does not exist")
    try:
        return load_safe_model(path, device=device, sha256=sha256)
    except UntrustedModelError:
        if not trusted:
            raise
    try:
        model = load_pickled_model(path, device=device)
    except Exception as error:
        raise InputError(f"{path} is not a loadable MACE model file: {error}") from error
    if not hasattr(model, "atomic_numbers") or not hasattr(model, "r_max"):
        raise InputError(f"{path} holds a {type(model).__name__}, not a MACE model")
    return model


def mace_calculator(
    path: str | Path, device: str = "cpu", default_dtype: str = "float64", trusted: bool = False, **kwargs
):
    """An ASE ``MACECalculator`` of the model at ``path`` (safe form; a pickle only with ``trusted=True``)."""
    from mace.calculators import MACECalculator

    model = load_model(path, device=device, trusted=trusted)
    return MACECalculator(models=[model], device=device, default_dtype=default_dtype, **kwargs)


def resolve_device(device: str | None) -> str:
    """``auto``/None -> ``cuda`` when available, else ``cpu``; other values pass through after a check."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda", "mps") and not str(device).startswith("cuda:"):
        raise InputError(f"device {device!r} is not valid; valid: auto, cpu, cuda, cuda:N, mps")
    return device


def run_mace_train(argv: Sequence[str], log_path: str | Path) -> int:
    """Run ``mace_run_train`` with ``argv`` in this process, its output into ``log_path``; return its status.

    In-process because the fine-tuning engine has imported torch and mace already (to check species): a
    subprocess paid that import again, about 10 s per training on this project's CPUs. mace's console and
    file log handlers are removed afterwards, so later logging in this process does not go to a closed
    file; an exception is written to the log as a traceback and gives status 1 (argparse errors give 2).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 1))  # one thread unless told (as before)
    root = logging.getLogger()
    handlers, filters, level = list(root.handlers), list(root.filters), root.level
    with open(log_path, "w") as log:
        log.write("# mace_run_train " + " ".join(argv) + "\n")
        log.flush()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                from mace import tools
                from mace.cli.run_train import run

                run(tools.build_default_arg_parser().parse_args(list(argv)))
                status = 0
            except SystemExit as stop:
                status = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
            except Exception:  # any failure of mace is reported through the log and the status
                traceback.print_exc(file=log)
                status = 1
            finally:
                for handler in [h for h in root.handlers if h not in handlers]:
                    root.removeHandler(handler)
                    handler.close()
                root.filters[:] = filters
                root.setLevel(level)
                torch.set_num_threads(threads)
    return status


def read_results_lines(results_dir: str | Path) -> list[dict[str, Any]]:
    """The json lines mace writes to ``results/*_train.txt`` (one per evaluation), in file order."""
    rows: list[dict[str, Any]] = []
    for path in sorted(Path(results_dir).glob("*_train.txt")):
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def has_nonfinite_loss(rows: list[dict[str, Any]], log_text: str = "") -> bool:
    """True when a logged loss is NaN/inf or mace's log reports a non-finite loss."""
    for row in rows:
        loss = row.get("loss")
        if loss is not None:
            try:
                if not math.isfinite(float(loss)):
                    return True
            except (TypeError, ValueError):
                return True
    lowered = log_text.lower()
    return any(token in lowered for token in ("loss=nan", "loss=inf", "loss is nan", "nan loss", "loss=-inf"))
