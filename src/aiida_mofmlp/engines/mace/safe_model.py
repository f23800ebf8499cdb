"""MACE models in a form that cannot run code when loaded: a state dict and a JSON architecture.

A ``.model`` file written by mace is a pickle: loading it (``torch.load(weights_only=False)``) runs
whatever the file says, e.g. ``os.system``. This project therefore keeps every model in its *safe form*:
one torch file holding only a dict of plain values and tensors, read with ``torch.load(weights_only=True)``::

    {"format": "aiida-mofmlp.mace-safe", "version": 1, "model_class": "mace.modules.models.ScaleShiftMACE",
     "dtype": "float64", "config": "<JSON of mace's extract_config_mace_model>", "state_dict": {...}}

The model is rebuilt from mace's own classes (only classes of ``mace.modules`` and a fixed list of gate
functions may be named) and its weights. A pickle is opened only when its user says it is trusted, and then in
a short-lived subprocess with a clean environment (no AiiDA profile), limits on time and memory, that writes
the safe form (:func:`convert_in_subprocess`). No AiiDA imports here.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from aiida_mofmlp.common.errors import InputError

SAFE_FORMAT = "aiida-mofmlp.mace-safe"
SAFE_VERSION = 1
#: gate functions a safe config may name (mace's choices: silu, tanh, abs, None)
GATES = ("silu", "tanh", "abs", "relu", "gelu", "sigmoid")
#: modules whose classes a safe config may name
ALLOWED_MODULE_PREFIX = "mace.modules."
#: written by the CalcJobs beside the model files they copy in: {file name: SHA-256 of the stored node}
MODEL_HASHES_FILE = "model_hashes.json"
#: limits of the subprocess that opens a trusted pickle
CONVERT_TIMEOUT_S = 600
CONVERT_MEMORY_BYTES = 16 * 1024**3

UNTRUSTED_MESSAGE = (
    "{path} is not a model in the safe form; if it is a pickled MACE model (a mace .model file), opening "
    "it can run any code the file contains. If you trust its source, accept it explicitly (Python: "
    "trusted=True; command line: --trust-model; app: tick 'I trust this model file'); it is then opened "
    "once, in a separate process without access to your AiiDA profile, and kept in a safe form (weights "
    "and architecture) from then on"
)


class UntrustedModelError(InputError):
    """A model file is a pickle and its user has not said it is trusted."""


def sha256_of(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _gate_function(name: str | None):
    import torch

    if name is None:
        return None
    if name not in GATES:
        raise InputError(f"safe model: gate {name!r} is not allowed; valid: {list(GATES)} or null")
    return getattr(torch.nn.functional, name, None) or getattr(torch, name)


def _gate_name(function) -> str | None:
    if function is None:
        return None
    name = getattr(function, "__name__", "")
    if name not in GATES:
        raise InputError(f"model gate {function!r} cannot be written in the safe form; valid: {list(GATES)}")
    return name


def _class_of(path: str):
    """The mace class named by ``path`` (``mace.modules...Name``); anything else is refused."""
    import torch

    module_name, _, name = str(path).rpartition(".")
    if not module_name.startswith(ALLOWED_MODULE_PREFIX) or not name.isidentifier():
        raise InputError(f"safe model: class {path!r} is not a class of {ALLOWED_MODULE_PREFIX[:-1]}")
    cls = getattr(importlib.import_module(module_name), name, None)
    if not isinstance(cls, type) or not issubclass(cls, torch.nn.Module):
        raise InputError(f"safe model: {path!r} is not a torch module class of mace")
    return cls


def _encode(value: Any) -> Any:
    """A JSON value for one entry of mace's architecture config."""
    import numpy as np
    import torch
    from e3nn import o3

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, type):
        return {"class": f"{value.__module__}.{value.__qualname__}"}
    if isinstance(value, o3.Irreps):
        return {"irreps": str(value)}
    if isinstance(value, (np.ndarray, torch.Tensor)):
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        return {"array": array.tolist(), "dtype": str(array.dtype)}
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _encode(item) for key, item in value.items()}
    if callable(value):
        return {"gate": _gate_name(value)}
    kind = type(value).__name__
    raise InputError(f"model config value {value!r} ({kind}) cannot be written in the safe form")


def _decode(value: Any, key: str = "") -> Any:
    import numpy as np
    from e3nn import o3

    if isinstance(value, list):
        return [_decode(item, key) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"class"}:
        return _class_of(value["class"])
    if set(value) == {"irreps"}:
        return o3.Irreps(value["irreps"])
    if set(value) == {"gate"}:
        return _gate_function(value["gate"])
    if set(value) == {"array", "dtype"}:
        return np.asarray(value["array"], dtype=np.dtype(value["dtype"]))
    return {name: _decode(item, name) for name, item in value.items()}


def safe_payload(model) -> dict[str, Any]:
    """The safe form of a loaded mace model (a dict of plain values and tensors)."""
    import mace
    import torch
    from mace.tools.scripts_utils import extract_config_mace_model

    config = extract_config_mace_model(model)
    if "error" in config:
        raise InputError(f"{type(model).__name__} cannot be written in the safe form: {config['error']}")
    config["cueq_config"] = None  # an acceleration setting of the machine that trained it, not of the model
    config["atomic_numbers"] = [int(z) for z in model.atomic_numbers.tolist()]
    dtype = next(model.parameters()).dtype
    return {
        "format": SAFE_FORMAT,
        "version": SAFE_VERSION,
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "dtype": "float64" if dtype == torch.float64 else "float32",
        "mace_version": getattr(mace, "__version__", None),
        "config": json.dumps({key: _encode(value) for key, value in config.items()}),
        "state_dict": {key: tensor.detach().cpu() for key, tensor in model.state_dict().items()},
    }


def save_safe_model(model, path: str | Path) -> Path:
    """Write ``model`` in the safe form to ``path``; return the path."""
    import torch

    path = Path(path)
    torch.save(safe_payload(model), path)
    return path


def read_safe_payload(path: str | Path) -> dict[str, Any] | None:
    """The safe-form dict in ``path``, or None for anything else (e.g. a pickle); never unpickles."""
    import torch

    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # whatever the restricted unpickler refuses or trips over is not the safe form
        return None
    if not isinstance(payload, dict) or payload.get("format") != SAFE_FORMAT:
        return None
    if int(payload.get("version", 0)) > SAFE_VERSION:
        raise InputError(f"{path}: safe model version {payload['version']} is newer than this version reads")
    return payload


def is_safe_model(path: str | Path) -> bool:
    """True when ``path`` holds a model in the safe form."""
    return read_safe_payload(path) is not None


def describe_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Architecture, heads, species, cutoff and interactions of a safe model, from its JSON alone."""
    from ase.data import chemical_symbols

    config = json.loads(payload["config"])
    numbers = [int(z) for z in config["atomic_numbers"]]
    return {
        "architecture": payload["model_class"].rpartition(".")[2],
        "heads": list(config.get("heads") or ["Default"]),
        "species": [chemical_symbols[z] for z in numbers],
        "r_max": float(config["r_max"]),
        "num_interactions": int(config.get("num_interactions", 0)),
        "dtype": payload.get("dtype"),
    }


def describe_safe_model(path: str | Path) -> dict[str, Any]:
    """:func:`describe_payload` of the file at ``path``; an error when it is not in the safe form."""
    payload = read_safe_payload(path)
    if payload is None:
        raise UntrustedModelError(UNTRUSTED_MESSAGE.format(path=path))
    return describe_payload(payload)


def model_from_payload(payload: dict[str, Any], device: str = "cpu"):
    """Rebuild the mace model of a safe payload (only mace's classes are instantiated)."""
    import mace  # noqa: F401
    import torch

    cls = _class_of(payload["model_class"])
    config = {key: _decode(value, key) for key, value in json.loads(payload["config"]).items()}
    dtype = torch.float64 if payload.get("dtype") == "float64" else torch.float32
    model = cls(**config).to(dtype)
    model.load_state_dict(payload["state_dict"], strict=True)
    return model.to(device).eval()


def expected_sha256(path: str | Path) -> str | None:
    """The hash a CalcJob recorded for the model file ``path`` in :data:`MODEL_HASHES_FILE` beside it."""
    record = Path(path).parent / MODEL_HASHES_FILE
    if not record.is_file():
        return None
    return json.loads(record.read_text()).get(Path(path).name)


def load_safe_model(path: str | Path, device: str = "cpu", sha256: str | None = None):
    """The model in the safe file ``path``; its hash must match ``sha256`` or, when not given, the one its
    CalcJob recorded beside it (:func:`expected_sha256`)."""
    sha256 = sha256 or expected_sha256(path)
    if sha256 is not None and sha256_of(path) != sha256:
        raise InputError(f"{path}: its SHA-256 is not the stored model's {sha256}; the file was changed")
    payload = read_safe_payload(path)
    if payload is None:
        raise UntrustedModelError(UNTRUSTED_MESSAGE.format(path=path))
    return model_from_payload(payload, device)


def load_pickled_model(path: str | Path, device: str = "cpu"):
    """Unpickle a mace ``.model`` file: only for files this process wrote or its user explicitly trusts."""
    import mace  # noqa: F401  (must come before e3nn/torch.load)
    import torch

    return torch.load(str(path), map_location=device, weights_only=False)


def convert_in_subprocess(
    source: str | Path,
    target: str | Path,
    timeout: int = CONVERT_TIMEOUT_S,
    memory: int = CONVERT_MEMORY_BYTES,
) -> dict[str, Any]:
    """Open the trusted pickle ``source`` in a separate process and write its safe form to ``target``.

    The child (:func:`~aiida_mofmlp.common.isolation.run_module_isolated`) has a clean environment (no
    ``AIIDA_PATH``, a temporary ``HOME`` and working folder, one thread) and limits on CPU time and memory; it
    is killed after ``timeout`` seconds. Returns the model's facts.
    """
    from aiida_mofmlp.common.isolation import run_module_isolated

    source, target = Path(source).resolve(), Path(target).resolve()
    if not source.is_file():
        raise InputError(f"MACE model file {source} does not exist")
    done = run_module_isolated(__name__, [str(source), str(target)], timeout, memory)
    if done.timed_out:
        raise InputError(f"opening {source.name} took more than {timeout} s; refused")
    if done.returncode != 0 or not target.is_file():
        raise InputError(f"{source.name} is not a loadable MACE model: {done.last_error_line}")
    return describe_safe_model(target)


def _convert_main(argv: list[str]) -> int:  # runs in the child of convert_in_subprocess
    if len(argv) != 2:
        print("usage: python -m aiida_mofmlp.engines.mace.safe_model SOURCE.model TARGET", file=sys.stderr)
        return 2
    model = load_pickled_model(argv[0])
    if not hasattr(model, "atomic_numbers") or not hasattr(model, "r_max"):
        print(f"{argv[0]} holds a {type(model).__name__}, not a MACE model", file=sys.stderr)
        return 1
    save_safe_model(model, argv[1])
    return 0


if __name__ == "__main__":  # pragma: no cover - the subprocess of convert_in_subprocess
    sys.exit(_convert_main(sys.argv[1:]))
