"""Every framework CIF shipped with RASPA2 passes intake or gets a StructureIntakeError, never a traceback."""

from __future__ import annotations

import collections
import time
import warnings

import numpy as np

from aiida_mofmlp.tools.intake import (
    StructureIntakeError,
    StructureIntakeWarning,
    load_cif,
    suggest_supercell,
)

R_CUT = 6.0  # Å, a typical MACE r_max: how many frameworks need a supercell for it (counted, not enforced)

# files whose defects are known (checked by hand): they must keep getting this clear error
KNOWN_BAD = {
    "CAN-12.cif": "unreadable",  # citation loop: 8 values per row for 7 tags
    "NaX.cif": "unreadable",  # fractional coordinates given as '?'
    "COF-202.cif": "overlap",  # sites C9 and Si11 at the same coordinates
}
KNOWN_WARNED = {"IRMOF-5.cif": "undercoordinated_carbon"}  # pentoxy chains without H


def test_raspa_cif_sweep(raspa_share_dir, aiida_profile, capsys):
    paths = sorted((raspa_share_dir / "structures" / "cif").glob("*.cif"))
    assert len(paths) > 150, f"expected RASPA2's ~200 framework CIFs in {raspa_share_dir}, found {len(paths)}"

    counts: collections.Counter[str] = collections.Counter()
    errors: dict[str, str] = {}
    warned: dict[str, list[str]] = {}
    unexpected: dict[str, str] = {}
    start = time.perf_counter()
    for path in paths:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", StructureIntakeWarning)
                structure, issues = load_cif(path)
        except StructureIntakeError as error:
            counts[f"error:{error.kind}"] += 1
            errors[path.name] = error.kind
            assert path.name in str(error), f"the message does not name the file: {error}"
            continue
        except Exception as error:  # the point of the sweep: anything else is a bug
            unexpected[path.name] = f"{type(error).__name__}: {error}"
            continue
        counts["passed"] += 1
        assert len(structure.sites) > 0
        assert len([w for w in caught if issubclass(w.category, StructureIntakeWarning)]) == len(issues)
        if issues:
            counts["passed with warnings"] += 1
            warned[path.name] = [issue.kind for issue in issues]
            for issue in issues:
                counts[f"warning:{issue.kind}"] += 1
        if suggest_supercell(np.array(structure.cell), R_CUT) != (1, 1, 1):
            counts[f"needs supercell for r_cut={R_CUT}"] += 1
    elapsed = time.perf_counter() - start

    with capsys.disabled():
        print(f"\nRASPA2 CIF sweep: {len(paths)} files in {elapsed:.1f} s")
        for key in sorted(counts):
            print(f"  {key}: {counts[key]}")
        for name, kind in sorted(errors.items()):
            print(f"  refused {name}: {kind}")
        for name, kinds in sorted(warned.items()):
            print(f"  warned {name}: {', '.join(kinds)}")

    assert unexpected == {}
    assert counts["passed"] + sum(v for k, v in counts.items() if k.startswith("error:")) == len(paths)
    for name, kind in KNOWN_BAD.items():
        if any(path.name == name for path in paths):
            assert errors.get(name) == kind, f"{name}: expected a {kind} error, got {errors.get(name)}"
    for name, kind in KNOWN_WARNED.items():
        if any(path.name == name for path in paths):
            assert kind in warned.get(name, []), f"{name}: expected warning {kind}"
    assert counts["passed"] >= 0.9 * len(paths)
