"""Tests of the selection engine on a real MD trajectory (ASE Langevin with EMT, Cu cell with H guests)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

from aiida_mofmlp.common import frames as fr
from aiida_mofmlp.engines.selection import select as sel
from aiida_mofmlp.engines.selection.soap import soap_descriptors_naive

SMALL_SOAP = {"r_cut": 4.5, "n_max": 4, "l_max": 2}


def md_pool(n_per_run: int = 60, interval: int = 3, seed: int = 7) -> list:
    """Frames of 4 Langevin runs: Cu32 (loading 0) and Cu32 + 2 interstitial H 'guests' (loading 2),
    each at 300 K and 1000 K. Labels (REF_energy, REF_forces) are the EMT values."""
    rng = np.random.default_rng(seed)
    frames = []
    for loading in (0, 2):
        for temperature in (300.0, 1000.0):
            atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
            guest_id = np.zeros(len(atoms), dtype=int)
            for k, site in enumerate([(1.805, 1.805, 1.805), (5.415, 5.415, 5.415)][:loading]):
                atoms.append("H")
                atoms.positions[-1] = site
                guest_id = np.append(guest_id, k + 1)
            atoms.arrays["guest_id"] = guest_id
            atoms.calc = EMT()
            MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
            dyn = Langevin(
                atoms, 2 * units.fs, temperature_K=temperature, friction=0.02, rng=rng, fixcm=False
            )
            for _ in range(n_per_run):
                dyn.run(interval)
                frame = atoms.copy()
                frame.calc = None
                fr.set_labels(frame, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
                frame.info.update(loading=loading, temperature=temperature, source="md")
                frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def pool():
    return md_pool()


@pytest.fixture(scope="module")
def descriptors(pool):
    return sel.soap_descriptors(pool, SMALL_SOAP, species=["Cu", "H"])


def test_streaming_soap_equals_naive_per_atom_mean(pool):
    frames = pool[::20]
    for framework_only in (False, True):
        settings = {**SMALL_SOAP, "framework_only": framework_only, "chunk_size": 4}
        streamed = sel.soap_descriptors(frames, settings, species=["Cu", "H"])
        naive = soap_descriptors_naive(frames, settings, species=["Cu", "H"])
        assert streamed.shape == naive.shape
        np.testing.assert_allclose(streamed, naive, rtol=1e-5, atol=1e-7)
    all_atoms = sel.soap_descriptors(frames, SMALL_SOAP, species=["Cu", "H"])
    framework = sel.soap_descriptors(frames, {**SMALL_SOAP, "framework_only": True}, species=["Cu", "H"])
    has_guests = np.array([fr.n_guests(f) > 0 for f in frames])
    assert has_guests.any() and (~has_guests).any()
    np.testing.assert_allclose(all_atoms[~has_guests], framework[~has_guests], atol=1e-7)
    assert np.abs(all_atoms[has_guests] - framework[has_guests]).max() > 1e-4


def test_parallel_soap_matches_serial(pool):
    frames = pool[::25]
    for framework_only in (False, True):
        settings = {**SMALL_SOAP, "framework_only": framework_only}
        serial = sel.soap_descriptors(frames, settings, species=["Cu", "H"])
        parallel = sel.soap_descriptors(
            frames, {**settings, "n_jobs": 2, "chunk_size": 5}, species=["Cu", "H"]
        )
        np.testing.assert_allclose(parallel, serial, atol=1e-7)


def test_soap_rejects_missing_species(pool):
    with pytest.raises(ValueError, match=r"\['H'\] missing from soap.species"):
        sel.soap_descriptors(pool[-3:], SMALL_SOAP, species=["Cu"])


def _random_baseline(x, k, n_seeds=10):
    metrics = [
        sel.coverage_metrics(x, np.random.default_rng(s).choice(len(x), k, replace=False))
        for s in range(n_seeds)
    ]
    return {key: float(np.mean([m[key] for m in metrics])) for key in metrics[0]}


@pytest.mark.parametrize("method", ["fps", "kmeans"])
def test_soap_selection_covers_pool_better_than_random(pool, descriptors, method):
    k = 15
    result = sel.select(
        pool, {"method": method, "n_select": k, "soap": SMALL_SOAP, "map": {"enabled": False}}
    )
    assert len(result.selected) == k == len(set(result.selected))
    ours = sel.coverage_metrics(descriptors, result.selected)
    assert result.report["coverage"]["coverage_radius"] == pytest.approx(ours["coverage_radius"], rel=1e-5)
    random = _random_baseline(descriptors, k)
    assert ours["coverage_radius"] < random["coverage_radius"]
    assert ours["min_pairwise"] > random["min_pairwise"]
    if method == "kmeans":
        assert ours["mean_nearest"] < random["mean_nearest"]


def test_one_pass_with_known_species_gives_the_same_selection(pool, tmp_path):
    fr.write_frames(pool, tmp_path / "pool.extxyz")
    params = {"method": "kmeans", "n_select": 8, "quota": 4, "soap": SMALL_SOAP, "map": {"enabled": False}}
    scanned = sel.select(tmp_path / "pool.extxyz", params)
    one_pass = sel.select(
        tmp_path / "pool.extxyz", {**params, "soap": {**SMALL_SOAP, "species": ["Cu", "H"]}}
    )
    assert one_pass.selected == scanned.selected
    assert (
        one_pass.report["groups"]
        == scanned.report["groups"]
        == {
            "0": {"n_candidates": 120, "n_wanted": 4, "n_selected": 4},
            "2": {"n_candidates": 120, "n_wanted": 4, "n_selected": 4},
        }
    )


@pytest.mark.parametrize("method", ["fps", "kmeans", "random"])
def test_deduplication_against_training_set(pool, descriptors, method):
    training_idx = np.arange(0, len(pool), 6)
    training = [pool[i] for i in training_idx]
    nearest = sel.min_distances(descriptors, descriptors[training_idx])
    threshold = float(np.quantile(nearest[nearest > 0], 0.3))
    params = {
        "method": method,
        "n_select": 20,
        "soap": SMALL_SOAP,
        "dedup_threshold": threshold,
        "map": {"enabled": False},
    }
    result = sel.select(pool, params, training=training)
    chosen = np.array(result.selected)
    assert len(chosen) == 20
    assert not set(chosen.tolist()) & set(training_idx.tolist())  # frames already labelled are never picked
    assert sel.min_distances(descriptors[chosen], descriptors[training_idx]).min() >= threshold
    assert result.report["min_distance_to_training"] >= threshold
    expected_excluded = int((nearest < threshold).sum())
    assert result.report["n_excluded_as_duplicates"] == expected_excluded > len(training_idx)
    # selected frames are not duplicates of each other either
    assert sel.coverage_metrics(descriptors, chosen)["min_pairwise"] >= threshold


def test_sigma_window_and_quota_per_loading(pool):
    sigma = np.random.default_rng(3).uniform(0.0, 0.3, len(pool))
    params = {
        "method": "fps",
        "sigma_window": [0.06, 0.24],
        "quota": {"0": 5, "2": 8},
        "group_by": "loading",
        "soap": SMALL_SOAP,
        "map": {"enabled": False},
    }
    result = sel.select(pool, params, sigma=sigma)
    chosen = result.selected
    assert all(0.06 <= sigma[i] <= 0.24 for i in chosen)
    loadings = [pool[i].info["loading"] for i in chosen]
    assert loadings.count(0) == 5 and loadings.count(2) == 8
    assert result.report["n_in_sigma_window"] == int(((sigma >= 0.06) & (sigma <= 0.24)).sum())
    with pytest.raises(ValueError, match="sigma has 3 values but the pool has"):
        sel.select(pool, params, sigma=sigma[:3])


CBAD = {"bond_width": 0.05, "angle_width": 5.0, "dihedral_width": 30.0, "cell_length_width": 0.05}


def test_cbad_accepts_only_frames_with_new_bins_and_is_seeded(pool):
    frames = pool[::2]
    params = {"method": "cbad", "n_select": len(frames), "cbad": CBAD, "seed": 11, "map": {"enabled": False}}
    result = sel.select(frames, params)
    chosen = result.selected
    assert 1 < len(chosen) < len(frames)
    bins, _ = sel.cbad_bins(frames, CBAD)
    # reconstruct the visiting order: the seeded permutation of all candidates
    order = np.random.default_rng(11).permutation(len(frames))
    seen: set[int] = set()
    accepted = []
    for index in order:
        new = set(bins[index].tolist()) - seen
        if new:
            accepted.append(int(index))
            seen |= new
        else:  # every rejected frame only holds bins already filled by earlier accepted frames
            assert set(bins[index].tolist()) <= seen
    assert accepted == chosen
    assert all(n >= 1 for n in result.report["cbad"]["new_bins_per_selected"])
    assert result.report["cbad"]["n_bins_covered"] == len(seen) == result.report["cbad"]["n_bins_total"]
    # reproducible by seed, order-dependent otherwise
    assert sel.select(frames, params).selected == chosen
    other = sel.select(frames, {**params, "seed": 12}).selected
    assert other != chosen
    # coarser bins -> fewer frames
    coarse = {
        **CBAD,
        "bond_width": 0.2,
        "angle_width": 20.0,
        "dihedral_width": 90.0,
        "cell_length_width": 0.5,
    }
    assert len(sel.select(frames, {**params, "cbad": coarse}).selected) < len(chosen)
    # a pool already in the training set adds nothing
    assert sel.select(frames, params, training=frames).selected == []


def _acetaldehyde(aldehyde_ch: float):
    """CH3CHO with every methyl C-H at 1.095 A and the aldehyde C-H at ``aldehyde_ch`` (H moved along its
    bond, so no angle or dihedral changes)."""
    from ase.build import molecule

    atoms = molecule("CH3CHO")
    atoms.center(vacuum=5.0)
    atoms.pbc = True
    positions = atoms.positions
    symbols = atoms.get_chemical_symbols()
    for h in [k for k, symbol in enumerate(symbols) if symbol == "H"]:
        carbon = min(
            (k for k, symbol in enumerate(symbols) if symbol == "C"), key=lambda k: atoms.get_distance(h, k)
        )
        bonded_to_oxygen = any(
            symbols[k] == "O" and atoms.get_distance(carbon, k) < 1.4 for k in range(len(atoms))
        )
        length = aldehyde_ch if bonded_to_oxygen else 1.095
        direction = positions[h] - positions[carbon]
        positions[h] = positions[carbon] + direction / np.linalg.norm(direction) * length
    atoms.positions = positions
    return atoms


def test_cbad_atom_types_by_environment_tell_a_methyl_from_an_aldehyde_c_h():
    """Sharma & Sanvito type atoms by chemical environment: the aldehyde C-H shortened to the methyl C-H
    length fills a new bin only when the two carbons are different types."""
    from aiida_mofmlp.engines.selection.cbad import atom_type_names

    frames = [_acetaldehyde(1.115), _acetaldehyde(1.095)]  # bins of 0.01 A: 111 and 109
    settings = {"use_cell": False, "bond_width": 0.01}
    bins, registry = sel.cbad_bins(frames, settings)
    accepted, _ = sel.cbad_accept(bins, [0, 1])
    assert accepted == [0, 1]
    assert {"bond:C[CHHH]-H[C]", "bond:C[CHO]-H[C]", "bond:C[CHHH]-C[CHO]"} <= set(registry.type_keys)
    by_element, registry = sel.cbad_bins(frames, {**settings, "atom_types": "element"})
    assert sel.cbad_accept(by_element, [0, 1])[0] == [0]  # C-H at 1.095 A was already seen on the methyl
    assert "bond:C-H" in registry.type_keys
    assert atom_type_names(["O", "C", "H"], [[1], [0, 2], [1]], "environment") == ["O[C]", "C[HO]", "H[C]"]
    with pytest.raises(ValueError, match=r"cbad\.atom_types must be one of"):
        sel.cbad_bins(frames, {"atom_types": "charge"})


def test_flat_histogram_one_frame_per_energy_bin(pool):
    energy_per_atom = np.array([f.info["REF_energy"] / len(f) for f in pool])
    n_bins = 40
    result = sel.select(pool, {"method": "flat_histogram", "n_select": n_bins, "map": {"enabled": False}})
    chosen = np.array(result.selected)
    counts, edges = np.histogram(energy_per_atom, bins=n_bins)
    which = np.clip(np.searchsorted(edges, energy_per_atom[chosen], side="right") - 1, 0, n_bins - 1)
    assert len(set(which.tolist())) == len(chosen)  # at most one frame per bin
    expected_empty = int((counts == 0).sum())
    assert expected_empty > 0  # the loadings are far apart in energy: real gaps
    assert result.report["n_empty_bins"] == expected_empty
    assert len(chosen) == n_bins - expected_empty
    np.testing.assert_allclose(result.report["flat_histogram"]["all"]["edges"], edges)
    # energies given as an array (total eV per frame) and fixed bin width
    energies = np.array([f.info["REF_energy"] for f in pool])
    by_width = sel.select(
        [f.copy() for f in pool],
        {"method": "flat_histogram", "flat_histogram": {"bin_width": 0.01}, "map": {"enabled": False}},
        energies=energies,
    )
    info = by_width.report["flat_histogram"]["all"]
    assert info["n_bins"] == int(np.ceil((energy_per_atom.max() - energy_per_atom.min()) / 0.01))
    assert by_width.report["n_selected"] == info["n_bins"] - info["n_empty_bins"]


def test_map_tsne_embeds_pool_and_training(descriptors, tmp_path):
    pool_xy, train_xy = sel.embed_2d(descriptors[:60], descriptors[60:70], method="tsne", perplexity=10)
    assert pool_xy.shape == (60, 2) and train_xy.shape == (10, 2)
    assert np.isfinite(pool_xy).all() and np.ptp(pool_xy[:, 0]) > 0


def test_console_script_writes_selection_files(pool, tmp_path):
    fr.write_frames(pool, tmp_path / "pool.extxyz")
    fr.write_frames(pool[::10], tmp_path / "training.extxyz")
    sigma = np.linspace(0.0, 0.3, len(pool))
    np.save(tmp_path / "sigma.npy", sigma)
    config = {
        "pool": "pool.extxyz",
        "training": "training.extxyz",
        "sigma": "sigma.npy",
        "method": "kmeans",
        "n_select": 12,
        "sigma_window": [0.05, 0.25],
        "dedup_threshold": 1e-4,
        "soap": SMALL_SOAP,
    }
    (tmp_path / "input.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    out.mkdir()
    assert sel.main([str(tmp_path / "input.yaml"), "--workdir", str(out)]) == 0
    report = json.loads((out / "selected.json").read_text())
    assert report["n_selected"] == len(report["selected"]) == 12
    assert all(0.05 <= sigma[i] <= 0.25 for i in report["selected"])
    frames = read(out / "selected.extxyz", index=":")
    assert [f.info["parent_index"] for f in frames] == report["selected"]
    for frame, index in zip(frames, report["selected"], strict=True):
        np.testing.assert_allclose(frame.positions, pool[index].positions, atol=1e-6)
        assert frame.info["REF_energy"] == pytest.approx(pool[index].info["REF_energy"])
    with np.load(out / "map.npz") as data:
        assert data["pool_xy"].shape == (len(pool), 2)
        assert data["training_xy"].shape == (len(pool[::10]), 2)
        assert data["selected"].tolist() == report["selected"]
    assert (out / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_console_script_reports_bad_input(tmp_path, capsys):
    fr.write_frames(md_pool(n_per_run=2)[:3], tmp_path / "pool.extxyz")
    (tmp_path / "input.json").write_text(
        json.dumps({"pool": "pool.extxyz", "method": "kmeans", "n_clusters": 3})
    )
    assert sel.main([str(tmp_path / "input.json"), "--workdir", str(tmp_path)]) == 2
    assert "unknown selection parameter(s) ['n_clusters']" in capsys.readouterr().err
    (tmp_path / "input.json").write_text(json.dumps({"pool": "missing.extxyz"}))
    assert sel.main([str(tmp_path / "input.json"), "--workdir", str(tmp_path)]) == 2
    assert "pool file" in capsys.readouterr().err
    assert not (tmp_path / "selected.json").exists()


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"method": "tsne"}, "method must be one of"),
        ({"sigma_window": [0.3, 0.1]}, "sigma_window must be"),
        ({"soap": {"average": "mean"}}, "soap.average must be one of"),
        ({"cbad": {"bond_width": 0}}, "cbad.bond_width must be > 0"),
        ({"flat_histogram": {"n_bins": 3, "bin_width": 0.1}}, "not both"),
        ({"quota": -1}, "quota must be >= 0"),
    ],
)
def test_parameter_validation_names_the_bad_value(parameters, message):
    with pytest.raises(ValueError, match=message):
        sel.validate_parameters(parameters)
