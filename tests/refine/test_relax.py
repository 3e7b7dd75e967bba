import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from af2struct import load_structure
from af2struct.common import residue_constants as rc
from af2struct.geometry.stereo import violation_count
from refine import RelaxConfig, RelaxError, relax
from tests.cli_run import cli

ROOT = Path(__file__).resolve().parents[2]


def _noisy(p, sigma=0.2, seed=0):
    rng = np.random.default_rng(seed)
    return p.replace(atom_positions=(p.atom_positions + rng.normal(0, sigma, p.atom_positions.shape)).astype(np.float32))


@pytest.fixture(scope="module")
def relaxed_set(real_structures):
    out = []
    for path in (real_structures[0], real_structures[2]):  # 1PSM (NMR), T1082 (X-ray)
        nat = load_structure(path)
        noisy = _noisy(nat).with_residue_b_factors(np.linspace(30, 90, len(nat)))
        out.append((noisy, relax(noisy, RelaxConfig())))
    return out


@pytest.mark.slow
def test_relax_lowers_energy_and_removes_violations(relaxed_set):
    for noisy, r in relaxed_set:
        assert r.final_energy < r.initial_energy
        assert r.violations_before > 0  # 0.2 A noise does create clashes / bad peptide bonds
        assert r.violations_after == 0, r.notes
        assert violation_count(r.protein, 0.4) == 0
        assert r.clashscore_after <= r.clashscore_before
        assert r.rmsd_heavy <= 0.5
        assert r.backend == "openmm" and r.platform in ("CPU", "CUDA", "OpenCL", "Reference")


def test_relax_keeps_sequence_numbering_and_confidence(relaxed_set):
    for noisy, r in relaxed_set:
        p = r.protein
        assert p.sequence == noisy.sequence
        assert np.array_equal(p.residue_index, noisy.residue_index)
        assert np.array_equal(p.chain_id, noisy.chain_id)
        assert np.allclose(p.residue_b_factors, noisy.residue_b_factors)
        assert (p.atom_mask >= noisy.atom_mask).all()  # atoms may be added, never dropped


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["repel", "release"])
def test_relax_predicted_quality_model(data_dir, policy):
    """A predictor-like full-atom model (ideal geometry, 0.5 A trace error, chi angles 20 deg off,
    so side chains clash) of real 1PSM: clashes and bad peptide bonds go, the model stays, with
    either violation policy."""
    from af2struct.eval.metrics import score_model
    from af2struct.geometry.decoys import predicted_quality_model

    nat = load_structure(data_dir / "openfold_1psm_A.pdb.gz")
    model = predicted_quality_model(nat, seed=0)
    assert score_model(model, nat).lddt_ca > 0.85
    r = relax(model, RelaxConfig(violation_policy=policy))
    assert r.violations_before > 10 and r.violations_after == 0, r.notes
    assert r.final_energy < r.initial_energy and r.rmsd_heavy <= 0.5
    assert r.protein.sequence == nat.sequence
    assert np.array_equal(r.protein.residue_index, nat.residue_index)


@pytest.mark.slow
def test_pull_back_brings_a_clean_model_closer_without_violations(data_dir):
    """A model that ends clean but further than ``target_rmsd`` is pulled back by stiffer
    restraints with near-contacts held apart: closer to the input, still clean, below the input's
    energy; ``target_rmsd=0`` leaves the rounds' result alone. And relax is deterministic: two
    relaxes of the same input that take the same rounds (``target_rmsd=0``, and a pull-back with
    no room to stiffen) give the same atoms and hydrogens to the last digit (hydrogens placed from
    a seeded generator, OpenMM's CPU platform on one thread with deterministic forces)."""
    from af2struct.geometry.decoys import predicted_quality_model
    from refine.openmm_backend import wants_pull_back

    model = predicted_quality_model(load_structure(data_dir / "openfold_1psm_A.pdb.gz"), seed=1)
    plain = relax(model, RelaxConfig(target_rmsd=0, keep_hydrogens=True))
    assert not any("pulled back" in n for n in plain.notes)
    target = plain.rmsd_heavy - 0.2  # within the 0.25 A window
    pulled = relax(model, RelaxConfig(target_rmsd=target))
    assert any("pulled back" in n for n in pulled.notes), pulled.notes
    assert pulled.rmsd_heavy < plain.rmsd_heavy - 0.03
    assert pulled.violations_after == 0 and violation_count(pulled.protein, 0.4) == 0
    assert plain.final_energy < pulled.final_energy < pulled.initial_energy
    assert pulled.protein.sequence == model.sequence
    # no room to stiffen, or a model that moved too far for the pull-back: nothing is pulled
    capped = relax(model, RelaxConfig(target_rmsd=target, pull_back_stiffness_max=20, keep_hydrogens=True))
    assert not any("pulled back" in n for n in capped.notes)
    # deterministic: the same rounds from the same input give the same atoms, to the last digit
    assert capped.outer_iterations == plain.outer_iterations and capped.final_energy == plain.final_energy
    np.testing.assert_array_equal(capped.protein.atom_positions, plain.protein.atom_positions)
    assert " H " in capped.pdb_with_hydrogens and capped.pdb_with_hydrogens == plain.pdb_with_hydrogens
    # a model that moved further than the window: the rounds moved it for a reason, not pulled
    assert wants_pull_back(RelaxConfig(target_rmsd=target), plain.rmsd_heavy)
    assert not wants_pull_back(RelaxConfig(target_rmsd=plain.rmsd_heavy - 0.3), plain.rmsd_heavy)
    assert not wants_pull_back(RelaxConfig(target_rmsd=target, violation_policy="release"), plain.rmsd_heavy)


@pytest.mark.slow
def test_lone_residue_between_long_bonds_is_bonded_back(real_structures):
    """A residue cut off on both sides by long C-N distances (consecutive numbering) cannot be an
    Amber chain of its own: it is bonded back to its neighbours and relaxed."""
    nat = load_structure(real_structures[0])
    pos = nat.atom_positions.copy()
    pos[5] += np.array([6.0, 0.0, 0.0], np.float32) * (nat.atom_mask[5][:, None] > 0)
    r = relax(nat.replace(atom_positions=pos), RelaxConfig())
    assert len(r.protein) == len(nat) and r.protein.sequence == nat.sequence
    n_, c_ = 0, 2
    d = np.linalg.norm(r.protein.atom_positions[5, n_] - r.protein.atom_positions[4, c_])
    assert d < 1.6  # bonded again


def test_chain_break_kept_and_said(data_dir):
    p = load_structure(data_dir / "messy_1aki.pdb")  # residue 7 is missing
    r = relax(p, RelaxConfig(keep_hydrogens=True))
    assert any("chain break" in n and "8" in n for n in r.notes)
    i6, i8 = list(p.residue_index).index(6), list(p.residue_index).index(8)
    gap_before = np.linalg.norm(p.atom_positions[i8, 0] - p.atom_positions[i6, 2])
    gap_after = np.linalg.norm(r.protein.atom_positions[i8, 0] - r.protein.atom_positions[i6, 2])
    assert gap_after > 2.5 and abs(gap_after - gap_before) < 1.0  # no bond (1.33 A) pulled across the gap
    assert r.pdb_with_hydrogens and " H " in r.pdb_with_hydrogens


def test_unnumbered_break_is_kept_and_not_a_violation(real_structures):
    """Deposited structures can miss residues without a numbering gap (CASP14 T1037 has C-N
    11 A between residues 33 and 34): relax keeps that break and does not count it as a
    violation it failed to fix."""
    nat = load_structure(real_structures[0])  # 1PSM, 38 residues
    drop = (np.arange(len(nat)) < 18) | (np.arange(len(nat)) > 20)  # remove 3 residues, renumber consecutively
    p = nat.select(np.nonzero(drop)[0])
    p = p.replace(residue_index=np.arange(1, len(p) + 1, dtype=np.int32))
    r = relax(_noisy(p), RelaxConfig())
    assert any("chain break" in n for n in r.notes)
    assert r.violations_after == 0 and r.rmsd_heavy <= 0.5
    gap = np.linalg.norm(r.protein.atom_positions[18, 0] - r.protein.atom_positions[17, 2])
    assert gap > 3.0  # not pulled into a bond


def test_missing_backbone_and_side_chain_atoms_are_built(real_structures):
    nat = load_structure(real_structures[0])  # 1PSM
    mask = nat.atom_mask.copy()
    mask[10, 3:] = 0  # drop CB and the side chain
    mask[10, 4] = 1  # keep O
    mask[20, 4] = 0  # drop a backbone O
    r = relax(nat.replace(atom_mask=mask))
    assert r.protein.atom_mask[10].sum() == nat.atom_mask[10].sum()
    assert r.protein.atom_mask[20, 4] == 1
    assert r.violations_after == 0


def test_unknown_residue_is_a_clear_error(real_structures):
    nat = load_structure(real_structures[0])
    aat = nat.aatype.copy()
    aat[3] = 20
    with pytest.raises(RelaxError, match="unknown residue type"):
        relax(nat.replace(aatype=aat))


@pytest.mark.parametrize("where,msg", [(1e9, "beyond 9999 A"), (9999.0, "from its CA")])
def test_absurd_coordinates_are_an_input_error(real_structures, where, msg):
    """One atom thrown far away (1e9 A, or 9999 A: what a PDB file can still hold) is refused
    before minimisation, naming the residue and atom, instead of an "ok" with RMSD 1e8 A."""
    nat = load_structure(real_structures[0])
    pos = nat.atom_positions.copy()
    pos[5, rc.atom_order["CB"]] = where
    with pytest.raises(RelaxError, match=rf"residue {nat.residue_index[5]}.*CB.*{msg}"):
        relax(nat.replace(atom_positions=pos))


def test_config_validation():
    with pytest.raises(ValueError, match="unknown key"):
        RelaxConfig.from_dict({"stifness": 3})
    with pytest.raises(ValueError, match="backend"):
        RelaxConfig(backend="gromacs")
    with pytest.raises(ValueError, match="platform"):
        RelaxConfig(platform="TPU")
    with pytest.raises(ValueError, match="violation_policy"):
        RelaxConfig(violation_policy="ignore")
    with pytest.raises(ValueError, match="soften_factor"):
        RelaxConfig(soften_factor=2.0)
    with pytest.raises(ValueError, match="target_rmsd"):
        RelaxConfig(target_rmsd=-1)


def test_minimiser_failure_is_retried_then_reported(real_structures, monkeypatch):
    import refine.openmm_backend as ob

    calls = {"n": 0}
    real = ob._RelaxRun.minimise_once

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RelaxError("minimiser diverged (energy nan)")
        return real(*a, **k)

    monkeypatch.setattr(ob._RelaxRun, "minimise_once", flaky)
    r = relax(_noisy(load_structure(real_structures[0])))
    assert r.attempts >= 2 and any("attempt 1 failed" in n for n in r.notes)

    def always(*a, **k):
        raise RelaxError("minimiser diverged (energy nan)")

    monkeypatch.setattr(ob._RelaxRun, "minimise_once", always)
    with pytest.raises(RelaxError, match="failed 2 times"):
        relax(load_structure(real_structures[0]), RelaxConfig(max_attempts=2))


def test_rosetta_backend_missing_is_clear(real_structures):
    try:
        import pyrosetta  # noqa: F401
    except ImportError:
        with pytest.raises(RelaxError, match="PyRosetta.*pyrosetta.org"):
            relax(load_structure(real_structures[0]), RelaxConfig(backend="rosetta"))
    else:
        pytest.skip("PyRosetta is installed: the real backend is tested in test_rosetta.py")


def _psm_pieces(folder: Path, data_dir: Path, pieces=((0, 38), (0, 24))) -> list:
    """Real 1PSM and pieces of it (residues ``a:b``) as PDB files ``psm_<a>_<b>.pdb`` in ``folder``:
    small structures for the command-line tests, whose properties do not depend on size."""
    from af2struct.common.io import save_structure

    folder.mkdir(exist_ok=True)
    nat = load_structure(data_dir / "openfold_1psm_A.pdb.gz")
    names = []
    for a, b in pieces:
        save_structure(nat.select(np.arange(a, b)), folder / f"psm_{a}_{b}.pdb")
        names.append(f"psm_{a}_{b}")
    return names


@pytest.mark.slow
def test_relax_script_batch_resume_and_amber(tmp_path, data_dir):
    inp = tmp_path / "in"
    whole, part = _psm_pieces(inp, data_dir)
    (inp / "broken.pdb").write_text("HETATM    1  O   HOH A   1      10.000  10.000  10.000  1.00 30.00           O\n")
    out = tmp_path / "out"
    args = [inp, "--out", out]
    r = cli("relax", *args, "--amber-out", "--jobs", "2")
    assert r.returncode == 3, r.stderr
    report = {x["name"]: x for x in json.loads((out / "relax_report.json").read_text())}
    assert report[whole]["status"] == "ok" and report[part]["status"] == "ok"
    assert report["broken"]["status"] == "error" and "no protein residues" in report["broken"]["error"]
    assert (out / f"{whole}_relaxed.pdb").exists() and (out / f"{whole}_relaxed.prmtop").stat().st_size > 0
    assert load_structure(out / f"{whole}_relaxed.pdb").sequence == load_structure(inp / f"{whole}.pdb").sequence
    import parmed

    s = parmed.load_file(str(out / f"{whole}_relaxed.prmtop"), str(out / f"{whole}_relaxed.inpcrd"))
    assert len(s.residues) == 38 and s.coordinates.shape[0] == len(s.atoms)
    # resume: what finished with the same input and settings is not redone; the failure is retried
    mtime = (out / f"{whole}_relaxed.pdb").stat().st_mtime_ns
    r = cli("relax", *args, "--amber-out")
    assert "2 of 3 structures already finished" in r.stderr and "broken: redone: it failed before" in r.stderr
    assert (out / f"{whole}_relaxed.pdb").stat().st_mtime_ns == mtime
    assert whole in (out / "relax_report.csv").read_text()
    # changed settings, a changed input, a deleted output: redone, and the run says why
    _psm_pieces(tmp_path / "other", data_dir, [(5, 30)])
    (inp / f"{part}.pdb").write_bytes((tmp_path / "other" / "psm_5_30.pdb").read_bytes())
    (out / f"{whole}_relaxed.prmtop").unlink()
    r = cli("relax", *args, "--amber-out")
    assert f"{part}: redone: its input or options changed" in r.stderr
    assert f"{whole}: redone: {whole}_relaxed.prmtop is missing or changed" in r.stderr
    assert load_structure(out / f"{part}_relaxed.pdb").sequence == load_structure(inp / f"{part}.pdb").sequence
    r = cli("relax", *args)  # no --amber-out: other settings
    assert f"{whole}: redone: its input or options changed" in r.stderr


@pytest.mark.slow
def test_relax_worker_killed_costs_only_its_structure(tmp_path, data_dir):
    """A worker killed as by the out-of-memory killer: its structure is reported failed, the others
    finish, the report is written; the rerun finishes it. (The command line itself: the worker is
    found among the relax process's children.)"""
    import os
    import signal
    import time

    inp = tmp_path / "in"
    _psm_pieces(inp, data_dir, [(0, 38), (0, 24), (10, 38)])
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "scripts/relax.py"), str(inp), "--out", str(out), "--quiet", "--jobs", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = []
    deadline = time.time() + 120
    while len(workers) < 2 and time.time() < deadline:
        time.sleep(0.1)
        workers = []
        for pid in os.listdir("/proc"):
            try:
                stat = open(f"/proc/{pid}/stat").read().split()
                cmdline = open(f"/proc/{pid}/cmdline").read()
            except OSError:
                continue
            if pid.isdigit() and int(stat[3]) == proc.pid and "spawn_main" in cmdline:
                workers.append(int(pid))
    os.kill(min(workers), signal.SIGKILL)  # each worker holds a structure from its start
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 3 and "Traceback" not in err, err
    report = json.loads((out / "relax_report.json").read_text())
    failed = [r for r in report if r["status"] == "error"]
    assert len(failed) == 1 and "worker process died (killed by signal 9" in failed[0]["error"]
    assert sum(r["status"] == "ok" for r in report) == 2
    r = cli("relax", inp, "--out", out, "--jobs", "2")
    assert r.returncode == 0 and "2 of 3 structures already finished" in r.stderr


@pytest.mark.slow
def test_relax_killed_mid_run_then_rerun_gives_the_uninterrupted_outputs(tmp_path, data_dir):
    """kill -9 of the relax process itself (no ``finally`` runs) after its first structure: the
    rerun keeps that one, relaxes the other, and the outputs and report rows (but the wall time)
    are those of an uninterrupted run."""
    import csv

    inp = tmp_path / "in"
    names = _psm_pieces(inp, data_dir, [(0, 12), (12, 24)])
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    code = f"""
import os, signal
import refine.batch as rb
real, seen = rb.relax_file, []
def relax_then_die(*args):
    if seen:
        os.kill(os.getpid(), signal.SIGKILL)
    seen.append(args)
    return real(*args)
rb.relax_file = relax_then_die
rb.relax_batch([{str(inp)!r}], rb.Path({str(killed)!r}), rb.RelaxConfig(), progress=False)
"""
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == -9, p.stderr
    assert [f.name for f in (killed / ".af2struct" / "records").iterdir()] == [f"{names[0]}.json"]
    assert cli("relax", inp, "--out", whole).returncode == 0
    r = cli("relax", inp, "--out", killed)
    assert r.returncode == 0 and "1 of 2 structures already finished" in r.stderr
    for n in names:
        assert (killed / f"{n}_relaxed.pdb").read_bytes() == (whole / f"{n}_relaxed.pdb").read_bytes(), n

    def rows(out):
        return [{k: v for k, v in row.items() if k not in ("wall_time", "output")}
                for row in csv.DictReader(open(out / "relax_report.csv"))]

    assert rows(killed) == rows(whole)


def _force_field_outliers(pdb_with_hydrogens: str):
    """Heavy-atom bonds and angles of a relaxed model against the force field's own equilibrium
    values (amber99sb, as relax used it): the largest bond-length and angle deviations, every
    SG-SG bridge length and the largest heavy-atom vdW overlap (A)."""
    import io

    import openmm
    from openmm import app, unit

    pdb = app.PDBFile(io.StringIO(pdb_with_hydrogens))
    system = app.ForceField("amber99sb.xml").createSystem(pdb.topology, nonbondedMethod=app.NoCutoff,
                                                         constraints=None)
    xyz = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.angstrom))
    atoms = list(pdb.topology.atoms())
    heavy = np.array([a.element.symbol != "H" for a in atoms])
    worst_bond, worst_angle = 0.0, 0.0
    for force in system.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for k in range(force.getNumBonds()):
                i, j, r0, _ = force.getBondParameters(k)
                if heavy[i] and heavy[j]:
                    d = np.linalg.norm(xyz[i] - xyz[j])
                    worst_bond = max(worst_bond, abs(d - r0.value_in_unit(unit.angstrom)))
        if isinstance(force, openmm.HarmonicAngleForce):
            for k in range(force.getNumAngles()):
                i, j, m, theta0, _ = force.getAngleParameters(k)
                if heavy[i] and heavy[j] and heavy[m]:
                    u, v = xyz[i] - xyz[j], xyz[m] - xyz[j]
                    ang = np.degrees(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1)))
                    worst_angle = max(worst_angle, abs(ang - np.degrees(theta0.value_in_unit(unit.radian))))
    pairs = [(a, b) for a, b in pdb.topology.bonds() if a.name == "SG" and b.name == "SG"]
    partners = [a.residue.index for pair in pairs for a in pair]
    assert len(partners) == len(set(partners)), "a cysteine in two bridges"
    return worst_bond, worst_angle, [np.linalg.norm(xyz[a.index] - xyz[b.index]) for a, b in pairs]


# with_violations.pdb (the same 148-residue target as with_violations_casp14, fewer violations) is
# covered by the harder CASP14 model; both are kept in tests/fixtures/af2_relax.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["multiple_disulfides_target", "with_violations_casp14"])
def test_relax_leaves_force_field_geometry_on_alphafold_test_structures(data_dir, name):
    """AlphaFold's relax test structures: after relax no heavy-atom bond is more than 0.1 A and no
    angle more than 15 degrees from the force field's values, no clash over 1.5 A, disulfides at
    2.0 +- 0.1 A, and the report says what was there before and what is left."""
    from af2struct.geometry.stereo import find_clashes, find_violations

    prot = load_structure(data_dir / "af2_relax" / f"{name}.pdb.gz")
    r = relax(prot, RelaxConfig(keep_hydrogens=True))
    worst_bond, worst_angle, bridges = _force_field_outliers(r.pdb_with_hydrogens)
    assert worst_bond <= 0.1 and worst_angle <= 15.0, (worst_bond, worst_angle)
    assert max((c.overlap for c in find_clashes(r.protein, 0.0)), default=0.0) <= 1.5
    assert all(abs(d - 2.0) <= 0.1 for d in bridges), bridges
    if name == "multiple_disulfides_target":
        assert len(bridges) >= 11
    after = find_violations(r.protein)
    assert r.violation_counts_after == after.counts()
    assert r.violations_after == after.actionable == 0, after.counts()
    assert r.violations_before == sum(r.violation_counts_before[k] for k in ("clash", "peptide_bond", "bond", "angle",
                                                                             "disulfide"))
    assert r.violations_before > 0
    row = r.as_row()
    assert row["violation_kinds_before"] != "none"


def test_relax_outputs_are_never_inputs_and_a_failed_rerun_sets_them_apart(tmp_path, data_dir):
    from refine.batch import relax_batch

    d = tmp_path / "d"
    d.mkdir()
    (d / "psm.pdb.gz").write_bytes((data_dir / "openfold_1psm_A.pdb.gz").read_bytes())
    cfg = RelaxConfig(max_outer_iterations=1)
    relax_batch([str(d)], d, cfg, progress=False)
    relax_batch([str(d)], d, cfg, progress=False)  # into its own input folder, again
    assert sorted(p.name for p in d.glob("*.pdb*")) == ["psm.pdb.gz", "psm_relaxed.pdb"]
    # the input replaced by something that cannot be relaxed: the old output is set apart, not left beside the error
    (d / "psm.pdb.gz").unlink()
    (d / "psm.pdb").write_text("HETATM    1  O   HOH A   1      10.000  10.000  10.000  1.00 30.00           O\n")
    rec, = relax_batch([str(d)], d, cfg, progress=False)
    assert rec["status"] == "error" and "psm_relaxed.pdb.previous" in rec["error"]
    assert not (d / "psm_relaxed.pdb").exists() and (d / "psm_relaxed.pdb.previous").exists()


def test_inputs_sharing_a_file_name_are_named_after_their_folders(tmp_path, data_dir, caplog):
    import logging

    from refine.batch import item_names

    for d in ("A", "B"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "unrelaxed.pdb").write_bytes((data_dir / "T1082.pdb").read_bytes())
    (tmp_path / "T1031.pdb").write_bytes((data_dir / "T1031.pdb").read_bytes())
    with caplog.at_level(logging.INFO):
        names = item_names([tmp_path / "A" / "unrelaxed.pdb", tmp_path / "B" / "unrelaxed.pdb", tmp_path / "T1031.pdb"])
    assert names == ["A_unrelaxed", "B_unrelaxed", "T1031"] and "named after their folders" in caplog.text
    with pytest.raises(ValueError, match="even with their folder"):  # the same file given twice
        item_names([tmp_path / "A" / "unrelaxed.pdb"] * 2)


@pytest.mark.slow
def test_relax_keeps_the_models_annotations(tmp_path, data_dir):
    from af2struct.common.io import read_annotations, save_structure
    from af2struct.common.modelcif import to_modelcif_string
    from refine.batch import relax_batch

    model = load_structure(data_dir / "openfold_1psm_A.pdb.gz")
    plddt = np.linspace(30, 90, len(model)).astype(np.float32)
    model = model.replace(b_factors=np.repeat(plddt[:, None], 37, 1) * model.atom_mask)
    d = tmp_path / "in"
    d.mkdir()
    notes = ["af2struct 0.1.0 model of psm", "B-factor column: per-residue pLDDT (0-100, higher = more confident)",
             "weights: shipped default.pt (sha256 0123456789ab); seed 0", "not relaxed"]
    save_structure(model, d / "psm.pdb", notes)
    (d / "psmcif.cif").write_text(to_modelcif_string(model, "psmcif", plddt, model_details="\n".join(notes[:3])))
    cfg = RelaxConfig(max_outer_iterations=1)
    relax_batch([str(d / "psm.pdb")], tmp_path / "o", cfg, progress=False)
    kept, _ = read_annotations(tmp_path / "o" / "psm_relaxed.pdb")
    assert kept[:3] == notes[:3] and kept[3].startswith("relaxed: openmm (") and "not relaxed" not in kept
    relax_batch([str(d / "psmcif.cif")], tmp_path / "c", cfg, fmt="cif", progress=False)
    out = tmp_path / "c" / "psmcif_relaxed.cif"
    kept, is_modelcif = read_annotations(out)
    assert is_modelcif and kept[:3] == notes[:3] and kept[-1].startswith("relaxed: openmm")
    import modelcif.reader

    with open(out) as fh:
        system, = modelcif.reader.read(fh)
    model_qa = system.model_groups[0][0].qa_metrics
    assert len(model_qa) == len(plddt) + 1  # per residue and global pLDDT, carried through
    relaxed = load_structure(out)
    assert np.allclose(relaxed.residue_b_factors, plddt, atol=0.01)  # pLDDT still in the B-factors


def test_insertion_codes_and_reversed_numbering_are_not_chain_breaks(data_dir):
    from refine.cleanup import input_breaks

    p = load_structure(data_dir / "openfold_1psm_A.pdb.gz")
    ri = p.residue_index.copy()
    ic = np.array([""] * len(p), dtype="<U1")
    ri[11:14] = ri[10]
    ic[11:14] = ["A", "B", "C"]
    ri[14:] -= 3
    for q in (p.replace(residue_index=ri, insertion_code=ic), p.replace(residue_index=p.residue_index[::-1].copy())):
        hard, long_bond = input_breaks(q)
        assert not hard.any() and not long_bond.any()
    r = relax(p.replace(residue_index=ri, insertion_code=ic), RelaxConfig(max_outer_iterations=1))
    assert r.protein.insertion_code[11:14].tolist() == ["A", "B", "C"] and r.rmsd_heavy < 0.5


def test_an_interrupted_relax_reports_what_is_on_disk(tmp_path, data_dir, monkeypatch):
    import refine.batch as batch

    (tmp_path / "in").mkdir()
    for n in ("T1082.pdb", "T1031.pdb"):
        (tmp_path / "in" / n).write_bytes((data_dir / n).read_bytes())
    out = tmp_path / "out"

    def interrupted(fn, jobs_args, jobs=1):  # a worker wrote its output, then Ctrl-C reached the run
        Path(jobs_args[0][1] + "_relaxed.pdb").write_text("ATOM\n")
        raise KeyboardInterrupt
        yield  # pragma: no cover

    monkeypatch.setattr(batch, "run_items", interrupted)
    with pytest.raises(KeyboardInterrupt):
        batch.relax_batch([str(tmp_path / "in")], out, RelaxConfig(), jobs=2, progress=False)
    report = {r["name"]: r["status"] for r in json.loads((out / "relax_report.json").read_text())}
    assert report == {"T1031": "interrupted", "T1082": "not run"}
