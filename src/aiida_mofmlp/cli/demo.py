"""``aiida-mofmlp demo``: one hand-chained active-learning iteration on MIL-47 + CO2 (fast protocols).

The full ActiveLearningWorkChain is not written yet; this demo chains the work chains that exist, one
after the other, each with :func:`aiida.engine.run_get_node`, and stops with a clear message at the
first step that fails. Every node it makes is stored in the profile, so ``verdi process list -a`` and
``verdi node show PK`` show the provenance afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: (key, what the step does) in the order the demo runs them
STEPS: tuple[tuple[str, str], ...] = (
    ("intake", "read and check the MIL-47 CIF (72 atoms) -> StructureData"),
    ("guest", "built-in CO2 guest (TraPPE sites and charges)"),
    ("raspa", "RASPA canonical-MC snapshots at 1 and 2 CO2 per unit cell (IsothermWorkChain)"),
    ("pool", "pool of frames: empty framework, loaded frames and rattled copies (StructureSetData)"),
    ("labelling", "CP2K GFN1-xTB energies and forces of every pool frame (LabellingWorkChain)"),
    ("foundation", "a tiny random MACE model as the 'foundation' (offline demo)"),
    ("ensemble", "fine-tune an ensemble of 2 MACE models on the labelled frames (EnsembleTrainingWorkChain)"),
    ("md", "short NVT MD of the loaded frame with model 0 in LAMMPS (LammpsMdBaseWorkChain)"),
    ("deviation", "ensemble force deviation sigma_max on the MD frames (DeviationBaseWorkChain)"),
    ("selection", "pick frames to label next inside the sigma window (select_frames) + map plot"),
)

#: seed-000 trust window on sigma_max (eV/Angstrom)
SIGMA_WINDOW = (0.06, 0.24)
#: defaults: the demo must finish in about 10 minutes on 2 CPU cores
DEMO_DEFAULTS = {
    "loadings": [1, 2],
    "n_rattled": 2,
    "rattle_stdev": 0.05,  # Angstrom
    "train_epochs": 4,
    "md_steps": 100,
    "md_temperature": 300.0,  # K
    "n_select": 3,
    "seed": 0,
}


#: GFN1-xTB SCF settings that converge MIL-47 (V(IV), d1: the fast protocol's default SCF oscillates and
#: cannot reach EPS_SCF 1e-6 even with smearing); deep-merged into the ``fast`` CP2K protocol
MIL47_XTB_SCF = {
    "parameters": {
        "FORCE_EVAL": {
            "DFT": {
                "SCF": {
                    "EPS_SCF": 1.0e-5,
                    "MAX_SCF": 400,
                    "ADDED_MOS": -1,
                    "DIAGONALIZATION": {"ALGORITHM": "STANDARD"},
                    "SMEAR": {"_": "ON", "METHOD": "FERMI_DIRAC", "ELECTRONIC_TEMPERATURE": 300},
                    "MIXING": {"METHOD": "BROYDEN_MIXING", "ALPHA": 0.05, "NBROYDEN": 8},
                }
            }
        }
    }
}


class DemoError(RuntimeError):
    """A demo step failed; the message names the step, the process and why."""


@dataclass
class DemoResult:
    """What the demo made: nodes by name, numbers for the summary, files written."""

    nodes: dict[str, Any] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def validate_steps(steps: tuple[tuple[str, str], ...] = STEPS) -> list[str]:
    """Keys of ``steps``; raises ValueError on duplicates or empty descriptions."""
    keys = [key for key, _ in steps]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate demo step keys: {keys}")
    for key, text in steps:
        if not key or not text.strip():
            raise ValueError(f"demo step {key!r} needs a key and a description")
    return keys


def mil47_cif() -> Path:
    """MIL-47.cif from RASPA2's share directory in the running environment."""
    import RASPA2

    path = Path(RASPA2.__file__).parent / "share" / "raspa" / "structures" / "cif" / "MIL-47.cif"
    if not path.is_file():
        raise DemoError(f"MIL-47.cif not found at {path}: is RASPA2 installed (scripts/install.sh)?")
    return path


# ----------------------------------------------------------------------------------------------------
# frame helpers (plain ASE; no AiiDA)
# ----------------------------------------------------------------------------------------------------


def _with_guest_ids(atoms, ids) -> Any:
    atoms.set_array("guest_id", np.asarray(ids, dtype=int))
    return atoms


def _min_distance(atoms, first, second) -> float:
    from ase.geometry import get_distances

    _, dist = get_distances(atoms.positions[first], atoms.positions[second], cell=atoms.cell, pbc=True)
    return float(dist.min())


def fold_guests(framework, snapshot, n_guests: int, min_contact: float = 2.0):
    """Put ``n_guests`` whole guest molecules of a supercell ``snapshot`` into the ``framework`` unit cell.

    The framework is periodic, so a guest's position modulo the unit cell is an equally valid site.
    Guests are taken in order and skipped when closer than ``min_contact`` (Angstrom) to an atom already
    placed. Returns the loaded unit cell (per-atom ``guest_id``) or None when too few guests fit.
    """
    from ase import Atoms
    from ase.geometry import find_mic

    from aiida_mofmlp.common.frames import guest_ids

    ids = guest_ids(snapshot)
    loaded = _with_guest_ids(framework.copy(), np.zeros(len(framework), dtype=int))
    placed = 0
    for gid in sorted(set(ids.tolist()) - {0}):
        molecule = snapshot[ids == gid]
        offsets, _ = find_mic(molecule.positions - molecule.positions[0], snapshot.cell, pbc=True)
        positions = molecule.positions[0] + offsets  # whole molecule across the supercell boundary
        frac = np.linalg.solve(framework.cell.array.T, positions.mean(axis=0))
        positions = positions - np.floor(frac) @ framework.cell.array
        guest = Atoms(molecule.get_chemical_symbols(), positions=positions)
        trial = loaded + _with_guest_ids(guest, np.full(len(guest), placed + 1))
        new = np.arange(len(loaded), len(trial))
        if _min_distance(trial, new, np.arange(len(loaded))) < min_contact:
            continue
        loaded = trial
        placed += 1
        if placed == n_guests:
            return loaded
    return None


def place_at_free_spot(framework, guest_atoms, grid: int = 12):
    """Put one guest at the grid point of the cell farthest from every framework atom (``guest_id`` 1)."""
    from ase.geometry import get_distances

    axes = (np.arange(grid) + 0.5) / grid
    frac = np.stack(np.meshgrid(axes, axes, axes, indexing="ij"), axis=-1).reshape(-1, 3)
    points = frac @ framework.cell.array
    _, dist = get_distances(points, framework.positions, cell=framework.cell, pbc=True)
    spot = points[int(np.argmax(dist.min(axis=1)))]
    guest = guest_atoms.copy()
    guest.positions = guest.positions - guest.positions.mean(axis=0) + spot
    loaded = _with_guest_ids(framework.copy(), np.zeros(len(framework), dtype=int))
    return loaded + _with_guest_ids(guest, np.ones(len(guest), dtype=int))


def composition_e0s(frames) -> dict[str, float]:
    """Least-squares isolated-atom energies (eV) from labelled frames: energy ~ sum_i count_i * e0_i."""
    from aiida_mofmlp.common.frames import get_energy

    species = sorted({symbol for atoms in frames for symbol in atoms.get_chemical_symbols()})
    counts = np.array([[atoms.get_chemical_symbols().count(s) for s in species] for atoms in frames], float)
    energies = np.array([get_energy(atoms) for atoms in frames], float)
    e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return {symbol: float(value) for symbol, value in zip(species, e0, strict=True)}


def plot_map(map_node, sigma: np.ndarray | None, path: Path) -> Path:
    """Scatter of the selection map (ArrayData pool_xy / training_xy / selected) saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pool = map_node.get_array("pool_xy")
    training = map_node.get_array("training_xy")
    selected = map_node.get_array("selected")
    fig, ax = plt.subplots(figsize=(5, 4))
    if training is not None and len(training):
        ax.scatter(training[:, 0], training[:, 1], marker="s", c="grey", label="training set")
    colour = sigma if sigma is not None and len(sigma) == len(pool) else "tab:blue"
    points = ax.scatter(pool[:, 0], pool[:, 1], c=colour, cmap="viridis", label="MD frames")
    if sigma is not None and len(sigma) == len(pool):
        fig.colorbar(points, ax=ax, label="sigma_max (eV/Å)")
    if len(selected):
        ax.scatter(
            pool[selected, 0], pool[selected, 1], s=120, facecolors="none", edgecolors="red", label="selected"
        )
    ax.set_xlabel(f"{map_node.base.attributes.get('method', 'pca')} 1")
    ax.set_ylabel(f"{map_node.base.attributes.get('method', 'pca')} 2")
    ax.legend(fontsize=8)
    ax.set_title("MIL-47 + CO2: SOAP map of the MD frames")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------
# the demo
# ----------------------------------------------------------------------------------------------------


def _run(process_inputs, step: str, echo: Callable[[str], None], accept: Callable[[Any], bool] | None = None):
    from aiida.engine import run_get_node

    results, node = run_get_node(process_inputs)
    if not node.is_finished_ok and accept is not None and accept(node):
        return results, node
    if not node.is_finished_ok:
        raise DemoError(
            f"step {step!r} failed: {node.process_label}<{node.pk}> exit status {node.exit_status}: "
            f"{node.exit_message}. Inspect it with `verdi process report {node.pk}`."
        )
    echo(f"    {node.process_label}<{node.pk}> finished ok")
    return results, node


def run_demo(
    profile: str,
    output_dir: Path,
    echo: Callable[[str], None] = print,
    settings: dict | None = None,
) -> DemoResult:
    """Run one active-learning iteration on MIL-47 + CO2 in the loaded profile ``profile``.

    ``settings`` overrides :data:`DEMO_DEFAULTS`. Writes the selection map PNG and the selected frames
    to ``output_dir``. Raises :class:`DemoError` naming the step that failed.
    """
    import warnings

    from aiida import orm
    from aiida.common.exceptions import NotExistent
    from aiida.manage import get_manager

    from aiida_mofmlp.common.codes import code_label
    from aiida_mofmlp.data import GuestMoleculeData, MaceModelData, StructureSetData
    from aiida_mofmlp.engines.foundation import make_small_model
    from aiida_mofmlp.tools.intake import StructureIntakeWarning, load_cif
    from aiida_mofmlp.workflows.deviation import DeviationBaseWorkChain
    from aiida_mofmlp.workflows.ensemble import EnsembleTrainingWorkChain
    from aiida_mofmlp.workflows.isotherm import IsothermWorkChain
    from aiida_mofmlp.workflows.labelling import LabellingWorkChain
    from aiida_mofmlp.workflows.lammps_md import LammpsMdBaseWorkChain
    from aiida_mofmlp.workflows.selection import get_parameters_from_protocol, select_frames

    opts = {**DEMO_DEFAULTS, **(settings or {})}
    # aiida-raspa still calls the deprecated set_extra/get_extra: keep the demo's output readable
    warnings.filterwarnings("ignore", message=r"`CalcJobNode\.(set|get)_extra` is deprecated")
    validate_steps()
    loaded_profile = get_manager().get_profile()
    if loaded_profile is None or loaded_profile.name != profile:
        raise DemoError(f"profile {profile!r} is not loaded (run `aiida-mofmlp setup --profile {profile}`)")
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    result = DemoResult()
    rng = np.random.default_rng(int(opts["seed"]))
    start = time.monotonic()

    def code(kind: str):
        try:
            return orm.load_code(code_label(kind))
        except NotExistent as exc:
            raise DemoError(
                f"code {code_label(kind)!r} not found in profile {profile!r}: run `aiida-mofmlp setup`"
            ) from exc

    def begin(index: int) -> float:
        key, text = STEPS[index]
        echo(f"[{index + 1}/{len(STEPS)}] {key}: {text}  (t = {time.monotonic() - start:.0f} s)")
        return time.monotonic()

    def done(index: int, t0: float) -> None:
        result.timings[STEPS[index][0]] = time.monotonic() - t0

    # 1. intake ------------------------------------------------------------------------------------
    t0 = begin(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StructureIntakeWarning)
        structure, issues = load_cif(mil47_cif())
    structure.store()
    framework = structure.get_ase()
    echo(f"    MIL-47: {len(framework)} atoms, {structure.get_formula()}, {len(issues)} intake warning(s)")
    for issue in issues:
        echo(f"      warning: {issue}")
    del caught
    result.nodes["structure"] = structure
    done(0, t0)

    # 2. guest -------------------------------------------------------------------------------------
    t0 = begin(1)
    guest = GuestMoleculeData.builtin("CO2").store()
    echo(f"    {guest.name}: {guest.symbols}, {len(guest.sites)} force-field sites")
    result.nodes["guest"] = guest
    done(1, t0)

    # 3. RASPA snapshots ---------------------------------------------------------------------------
    t0 = begin(2)
    overrides = {
        "cutoff": 8.0,  # short cutoff: fewer unit cells, faster MC (demo only)
        "run_widom": False,
        "run_isotherm": False,
        "snapshot_loadings": list(opts["loadings"]),
        "snapshot_init_cycles": 10,
        "snapshot_cycles": 2,
        "equilibration_tolerance": None,
        "seed": int(opts["seed"]),
    }
    builder = IsothermWorkChain.get_builder_from_protocol(
        code("raspa"), structure, guest, protocol="fast", overrides=overrides
    )
    results, node = _run(builder, "raspa", echo)
    snapshots = results["snapshots"]
    result.nodes["raspa"] = node
    result.nodes["snapshots"] = snapshots
    cells = results["force_field"]["unit_cells"]
    echo(
        f"    snapshots: {len(snapshots)} frames of {len(snapshots.get_frame(0))} atoms ({cells} unit cells)"
    )
    done(2, t0)

    # 4. pool --------------------------------------------------------------------------------------
    t0 = begin(3)
    base = _with_guest_ids(framework.copy(), np.zeros(len(framework), dtype=int))
    base.info.update({"source": "cif", "loading": 0, "config_type": "framework"})
    pool = [base]
    for frame, loading in zip(snapshots.iter_frames(), opts["loadings"], strict=True):
        loaded = fold_guests(framework, frame, int(loading))
        how = "raspa"
        if loaded is None:  # the folded guests overlap: one CO2 at the emptiest spot instead
            loaded = place_at_free_spot(framework, guest.get_ase())
            how = "free_spot"
            result.notes.append(
                f"loading {loading}: RASPA guests did not fit into one unit cell without overlap; "
                "placed 1 CO2 at the point farthest from the framework atoms instead"
            )
        loaded.info.update({"source": how, "loading": int(loading), "config_type": "loaded"})
        pool.append(loaded)
    echo(
        "    RASPA snapshots are supercells; the demo keeps the 72-atom unit cell for CP2K speed and folds "
        "whole guest molecules back into it (the framework is periodic)"
    )
    for index in range(int(opts["n_rattled"])):
        parent = pool[index % len(pool)]
        rattled = parent.copy()
        rattled.positions = rattled.positions + rng.normal(
            0, float(opts["rattle_stdev"]), rattled.positions.shape
        )
        rattled.info.update({"config_type": "rattled", "parent_index": index % len(pool)})
        pool.append(rattled)
    pool_node = StructureSetData.from_frames(pool).store()
    result.nodes["pool"] = pool_node
    echo(f"    pool: {len(pool_node)} frames ({', '.join(f.info['config_type'] for f in pool)})")
    done(3, t0)

    # 5. labelling ---------------------------------------------------------------------------------
    t0 = begin(4)
    builder = LabellingWorkChain.get_builder_from_protocol(
        code("cp2k"),
        pool_node,
        protocol="fast",
        overrides=MIL47_XTB_SCF,
        max_concurrent=2,
        max_failed_fraction=0.5,
    )
    echo("    SCF: Fermi-Dirac smearing + slow Broyden mixing from the start (MIL-47's V(IV) is d1)")
    results, node = _run(builder, "labelling", echo)
    labelled = results["labelled"]
    result.nodes["labelling"] = node
    result.nodes["labelled"] = labelled
    failed = results["failed"].get_dict()
    echo(
        f"    labelled {len(labelled)} of {len(pool_node)} frames (GFN1-xTB); "
        f"failed: {failed.get('count', 0)}"
    )
    done(4, t0)

    # 6. foundation --------------------------------------------------------------------------------
    t0 = begin(5)
    labelled_frames = labelled.get_frames()
    e0s = composition_e0s(labelled_frames)
    with warnings.catch_warnings():  # e3nn / TorchScript chatter while the model is built
        warnings.simplefilter("ignore", UserWarning)
        model_path = make_small_model(
            sorted(labelled.species), output_dir / "demo-foundation.model", seed=int(opts["seed"]), e0s=e0s
        )
    foundation = MaceModelData.from_file(model_path).store()
    result.nodes["foundation"] = foundation
    result.files["foundation_model"] = Path(model_path)
    echo(
        "    tiny random MACE model (offline demo; a real run passes a MACE-MP foundation model file: "
        "MaceModelData.from_file('mace-mp-0b3-medium.model'))"
    )
    done(5, t0)

    # 7. ensemble ----------------------------------------------------------------------------------
    t0 = begin(6)
    builder = EnsembleTrainingWorkChain.get_builder_from_protocol(
        code("train"),
        labelled,
        foundation,
        protocol="fast",
        overrides={"max_num_epochs": int(opts["train_epochs"]), "batch_size": 2, "mode": "naive"},
        first_seed=int(opts["seed"]),
    )
    results, node = _run(builder, "ensemble", echo)
    models = [results["models"][key] for key in sorted(results["models"])]
    result.nodes["ensemble"] = node
    for index, model in enumerate(models):
        result.nodes[f"model_{index}"] = model
    for row in results["summary"].get_dict().get("members", []):
        valid = row.get("valid") or {}
        echo(
            f"    member {row.get('index')}: seed {row.get('seed')}, validation force MAE "
            f"{valid.get('mae_f', float('nan')):.3f} eV/Å, energy MAE "
            f"{1000 * valid.get('mae_e_per_atom', float('nan')):.1f} meV/atom"
        )
    done(6, t0)

    # 8. MD ----------------------------------------------------------------------------------------
    t0 = begin(7)
    md_index = 1  # the first loaded frame of the pool
    steps = int(opts["md_steps"])
    builder = LammpsMdBaseWorkChain.get_builder_from_protocol(
        code("md"),
        pool_node,
        models[0],
        protocol="fast",
        overrides={
            "structure_index": md_index,
            "temperature": float(opts["md_temperature"]),
            "steps": steps,
            "dump_interval": max(1, steps // 10),
            "thermo_interval": max(1, steps // 10),
            "safety": {"check_interval": max(1, steps // 10)},
        },
    )
    unstable = LammpsMdBaseWorkChain.exit_codes.ERROR_MD_UNSTABLE.status
    results, node = _run(builder, "md", echo, accept=lambda n: n.exit_status == unstable)
    if node.is_finished_ok:
        trajectory = results["trajectory"]
        echo(f"    {steps} steps NVT at {opts['md_temperature']} K: {len(trajectory)} frames")
    else:
        # the young model drove the atoms into each other (at the same simulated time for every time
        # step, so it is the model, not the integrator): the frames before that are what active learning
        # wants to label; continue with the longest trajectory written before the blow-up
        runs = [c for c in node.called if "trajectory" in c.outputs]
        if not runs:
            raise DemoError(f"step 'md' failed without any frames: {node.exit_message} (pk {node.pk})")
        first = max(runs, key=lambda c: len(c.outputs.trajectory))
        trajectory = first.outputs.trajectory
        message = (
            f"MD with the freshly trained model blew up ({node.exit_message}); the demo continues with the "
            f"{len(trajectory)} frames {first.process_label}<{first.pk}> wrote before that"
        )
        result.notes.append(message)
        echo(f"    {message}")
    result.nodes["md"] = node
    result.nodes["trajectory"] = trajectory
    done(7, t0)

    # 9. deviation ---------------------------------------------------------------------------------
    t0 = begin(8)
    builder = DeviationBaseWorkChain.get_builder_from_protocol(
        code("deviation"), trajectory, models, protocol="fast"
    )
    results, node = _run(builder, "deviation", echo)
    deviation = results["deviation"]
    sigma = np.asarray(deviation.get_array("sigma_max"), dtype=float)
    lo, hi = SIGMA_WINDOW
    stats = {
        "n_frames": len(sigma),
        "sigma_min": float(np.nanmin(sigma)),
        "sigma_mean": float(np.nanmean(sigma)),
        "sigma_max": float(np.nanmax(sigma)),
        "fraction_trusted": float(np.mean(sigma < lo)),
        "fraction_candidates": float(np.mean((sigma >= lo) & (sigma <= hi))),
        "fraction_failed": float(np.mean(sigma > hi)),
    }
    result.nodes["deviation"] = node
    result.nodes["sigma"] = deviation
    result.numbers.update(stats)
    echo(
        f"    sigma_max (eV/Å): min {stats['sigma_min']:.3f}, mean {stats['sigma_mean']:.3f}, "
        f"max {stats['sigma_max']:.3f}; < {lo}: {stats['fraction_trusted']:.0%}, in [{lo}, {hi}]: "
        f"{stats['fraction_candidates']:.0%}, > {hi}: {stats['fraction_failed']:.0%}"
    )
    done(8, t0)

    # 10. selection --------------------------------------------------------------------------------
    t0 = begin(9)
    parameters = get_parameters_from_protocol(
        "fast",
        {
            "n_select": int(opts["n_select"]),
            "sigma_window": list(SIGMA_WINDOW),
            "pca_components": None,  # a dozen frames: no PCA needed
        },
    )
    outputs = select_frames(
        pool=trajectory, parameters=orm.Dict(parameters), training_set=labelled, sigma=deviation
    )
    report = outputs["report"].get_dict()
    result.nodes["selection_report"] = outputs["report"]
    selected = report.get("selected", [])
    result.numbers["n_selected"] = len(selected)
    result.numbers["n_candidates"] = report.get("n_candidates", report.get("counts"))
    echo(f"    candidates: {result.numbers['n_candidates']}; selected {len(selected)} frame(s): {selected}")
    if "selected" in outputs:
        result.nodes["selected"] = outputs["selected"]
        result.files["selected"] = outputs["selected"].write_extxyz(output_dir / "selected.extxyz")
    else:
        echo(
            "    no MD frame fell inside the sigma window: the models agree everywhere this MD went, so the "
            "next iteration would explore further (longer, hotter MD or more guests)"
        )
        # illustration only: the same selection without the window, so the map shows what FPS would pick
        parameters["sigma_window"] = None
        outputs = select_frames(pool=trajectory, parameters=orm.Dict(parameters), training_set=labelled)
        picked = outputs["report"].get_dict().get("selected", [])
        result.nodes["selection_report_no_window"] = outputs["report"]
        result.notes.append(
            "no frame in the sigma window; the map shows an illustrative selection without the window "
            f"({picked})"
        )
        echo(f"    (illustration, no sigma window) FPS would pick frames {picked}")
    if "map" in outputs:
        result.nodes["map"] = outputs["map"]
        result.files["map"] = plot_map(outputs["map"], sigma, output_dir / "selection_map.png")
    result.files["labelled"] = labelled.write_extxyz(output_dir / "labelled.extxyz")
    result.files["trajectory"] = trajectory.write_extxyz(output_dir / "md_trajectory.extxyz")
    done(9, t0)

    result.numbers["wall_time_s"] = time.monotonic() - start
    _summary(result, output_dir, echo)
    return result


def _summary(result: DemoResult, output_dir: Path, echo: Callable[[str], None]) -> None:
    echo("")
    echo(
        f"Demo finished in {result.numbers['wall_time_s']:.0f} s. Nodes (inspect with `verdi node show PK`):"
    )
    for name, node in result.nodes.items():
        label = getattr(node, "process_label", None) or type(node).__name__
        echo(f"  {name:<18} {label:<30} pk={node.pk:<6} uuid={node.uuid}")
    echo(f"Files in {output_dir}:")
    for name, path in result.files.items():
        echo(f"  {name:<18} {path}")
    for note in result.notes:
        echo(f"Note: {note}")
    echo("Step times (s): " + ", ".join(f"{key} {value:.0f}" for key, value in result.timings.items()))
