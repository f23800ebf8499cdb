"""Build the MOF "foundation" MACE model shipped in ``aiida_mofmlp/resources/foundation``: a resumable
GFN1-xTB campaign (no AiiDA).

A stand-in for MACE-MP (Batatia et al., arXiv:2401.00096) for offline demos, tests and benchmarks: a MACE
(Batatia et al., NeurIPS 2022) trained from scratch on GFN1-xTB labels (Grimme et al., J. Chem. Theory
Comput. 2017, DOI 10.1021/acs.jctc.7b00118; tblite) of about 30 frameworks from RASPA2's CIF library
(metal-organic frameworks first, zeolites and aluminophosphates for other oxygen environments), empty and
with 1-4 CO2, N2, CH4, H2O or H2, plus the isolated guests. Five frameworks are held out entirely (the
card's test set) and the demo's DMOF-1 is never trained on.

Stages (``--status`` shows where a campaign stands; every rerun resumes):

1. ``frameworks``: primitive cells from the CIFs, repeated until every perpendicular width >= 2 r_max;
2. ``e0s``: isolated-atom GFN1-xTB energies (the model's E0s; no least-squares fit);
3. ``cells``: each framework empty and with guests at their emptiest points, randomly oriented;
   isolated guests in a 20 Angstrom box;
4. ``label_initial``: rattled (0.01-0.1 Angstrom) and strained (isotropic and shear, up to +-5 %) copies
   of every cell, labelled (energy, forces, stress) per framework;
5. ``bootstrap``: a small MACE on a sample of those labels;
6. ``md``: Langevin MD with it at 300, 500 and 700 K from every cell, labelled per framework;
7. ``train``: the foundation, from the data folder alone (resumes from mace's checkpoints);
8. ``evaluate``: errors on the held-out frameworks and the demo's framework, per framework;
9. ``package``: model, replay sample, held-out sample and card into ``--output``.

The data folder (``--data``, default ``data/foundation`` in the repository, committed as it grows) holds
everything a later stage needs: a copy of it alone trains the model on another machine (a GPU one)::

    # here, labels (about an hour of 2 cores), in the background
    OMP_NUM_THREADS=1 nohup nice -n 10 .venv/bin/python scripts/build_foundation.py --stop-after md &
    .venv/bin/python scripts/build_foundation.py --status
    # there, training from the copied folder
    python scripts/build_foundation.py --data data/foundation --device cuda --workers 8

``--quick`` builds a toy version (2 frameworks, a few frames, 2 epochs) in about a minute, for tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from foundation_campaign.campaign import STAGES, Campaign
from foundation_campaign.labels import log
from foundation_campaign.report import evaluate, package, status_lines, train_foundation

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "data" / "foundation"
DEFAULT_WORK = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aiida-mofmlp" / "foundation"
DEFAULT_OUTPUT = REPO / "src" / "aiida_mofmlp" / "resources" / "foundation"


def run(campaign: Campaign, args: argparse.Namespace) -> None:
    c = campaign
    d = c.data
    c.progress["command"] = " ".join(["python", "scripts/build_foundation.py", *sys.argv[1:]])
    c.progress["machine"] = c.machine()
    c.save()
    steps = [
        ("frameworks", lambda: (d / "frameworks.extxyz.gz").is_file(), c.make_frameworks),
        ("e0s", lambda: (d / "e0s.json").is_file(), c.make_e0s),
        ("cells", lambda: (d / "cells.extxyz.gz").is_file(), c.make_cells),
        ("label_initial", c.initial_done, c.label_initial),
        ("bootstrap", lambda: c.bootstrap_model().is_file(), c.make_bootstrap),
        ("md", c.md_done, c.md_and_labels),
        ("train", lambda: c.model_path().is_file(), lambda: train_foundation(c, args)),
        ("evaluate", lambda: (d / "errors.json").is_file(), lambda: evaluate(c, args.device)),
        ("package", lambda: False, lambda: package(c, Path(args.output))),
    ]
    for name, done, action in steps:
        c.stage(name, done, action)
        if name == args.stop_after:
            log(f"stopped after {name} (--stop-after)")
            return
    log(f"done: seconds per stage {c.progress['seconds']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help=f"the campaign's data folder (default {DEFAULT_DATA})")
    parser.add_argument(
        "--workdir", default=None, help=f"scratch: chunks, MD runs, checkpoints ({DEFAULT_WORK})"
    )
    parser.add_argument(
        "--output", default=None, help=f"where the shipped files go (default {DEFAULT_OUTPUT})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="toy campaign for tests (2 frameworks, 2 epochs)"
    )
    parser.add_argument("--status", action="store_true", help="print where the campaign stands and exit")
    parser.add_argument("--stop-after", choices=STAGES, default=None, help="stop after this stage")
    parser.add_argument("--workers", type=int, default=2, help="processes for labelling and MD")
    parser.add_argument("--device", default="cpu", help="device of training and evaluation (cpu, cuda)")
    parser.add_argument("--epochs", type=int, default=None, help="foundation epochs (default: the plan's)")
    parser.add_argument(
        "--channels", type=int, default=None, help="foundation channels (default: the plan's)"
    )
    parser.add_argument("--max-L", type=int, default=None, dest="max_L", help="foundation max_L (plan's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    work = Path(args.workdir) if args.workdir else DEFAULT_WORK / ("quick" if args.quick else "full")
    data = Path(args.data) if args.data else (work / "data" if args.quick else DEFAULT_DATA)
    if args.output is None:
        args.output = str(work / "output") if args.quick else str(DEFAULT_OUTPUT)
    campaign = Campaign(data, work, quick=args.quick, seed=args.seed, workers=args.workers)
    if args.status:
        print("\n".join(status_lines(campaign)))
        return 0
    start = time.monotonic()
    run(campaign, args)
    log(f"wall time of this invocation: {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
