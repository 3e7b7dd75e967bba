"""predict's options in groups: the command line generated from them, validation once, and
every field's "changes a result" marking checked against the fingerprint a rerun compares."""

import dataclasses
import shutil

import pytest

from af2struct.cli.predict import build_parser
from af2struct.predict import targets as predict_targets
from af2struct.predict.options import (
    GROUPS,
    PDB,
    MsaOptions,
    OutputOptions,
    PredictOptions,
    RelaxOptions,
    TemplateOptions,
    options_from_arguments,
)
from af2struct.predict.targets import Target
from refine.types import RelaxConfig


def _cases(fixtures, tmp_path):
    """(group, field, base options of the group, the field's other value) for every field."""
    db, mirror = str(fixtures / "templates_sample.npz"), str(fixtures / "pdb_mirror")
    other_mirror = tmp_path / "mirror"
    shutil.copytree(mirror, other_mirror)
    msa_db = {"msa_db": str(fixtures / "psm_homologs_db.fasta")}
    pdb = {"source": PDB, "pdb_mirror": mirror, "cache": str(tmp_path / "c1")}
    return [
        ("model", "weights", {}, str(tmp_path / "other.pt")),
        ("model", "device", {}, "cpu"),
        ("model", "num_recycles", {}, 1),
        ("model", "seed", {}, 3),
        ("model", "max_length", {}, 50),
        ("msa", "msa", {}, str(fixtures / "1psm_A.a3m")),
        ("msa", "msa_db", {}, msa_db["msa_db"]),
        ("msa", "msa_iterations", msa_db, 1),
        ("msa", "msa_cpus", msa_db, 1),
        ("templates", "source", {}, db),
        ("templates", "custom", {}, (str(fixtures / "T1082.pdb"),)),
        ("templates", "max_templates", {"source": db}, 2),
        ("templates", "max_date", {"source": db}, "2020-01-01"),
        ("templates", "max_identity", {"source": db}, 0.9),
        ("templates", "search", {"source": db}, "phmmer"),
        ("templates", "pdb_mirror", pdb, str(other_mirror)),  # another mirror serves another pdb_seqres.txt
        ("templates", "cache", pdb, str(tmp_path / "c2")),
        ("templates", "offline", pdb, True),
        ("templates", "progress", {}, False),
        ("relax", "backend", {}, "none"),
        ("relax", "config", {}, RelaxConfig(stiffness=5.0)),
        ("outputs", "fmt", {}, "cif"),
        ("outputs", "plots", {}, False),
        ("outputs", "native", {}, str(fixtures / "T1082.pdb")),
        ("outputs", "progress", {}, False),
        ("run", "ray_address", {}, "auto"),
        ("run", "workers", {}, 2),
        ("run", "model_workers", {}, 1),
    ]


def _fingerprint(opts: PredictOptions) -> str:
    target = Target("T1082", "MKV")
    msa = predict_targets._msa_file(target, opts, 1)
    native, _ = predict_targets._native_file(target, opts, 1)
    return predict_targets._fingerprint(target, opts.key(), msa, native)


def test_every_option_changes_the_fingerprint_exactly_when_it_is_marked_to(data_dir, tmp_path):
    cases = _cases(data_dir, tmp_path)
    covered = {(g, f) for g, f, _, _ in cases}
    assert covered == {(g, f.name) for g, cls in GROUPS.items() for f in dataclasses.fields(cls)}
    for group, name, base, other in cases:
        cls = GROUPS[group]
        f = next(f for f in dataclasses.fields(cls) if f.name == name)
        before = PredictOptions(**{group: cls(**base)})
        after = PredictOptions(**{group: cls(**{**base, name: other})})
        changed = _fingerprint(before) != _fingerprint(after)
        assert changed == f.metadata.get("result", True), f"{group}.{name}"


def test_the_command_line_is_generated_from_the_groups(tmp_path):
    args = build_parser().parse_args([
        "x.fasta", "--out", str(tmp_path), "--seed", "7", "--msa-db", "db.fasta", "--msa-iterations", "2",
        "--templates", "db.npz", "--max-templates", "2", "--template-search", "phmmer", "--relax", "rosetta",
        "--relax-stiffness", "5", "--format", "cif", "--no-plots", "--quiet", "--workers", "2",
        "--custom-templates", "a.pdb", "b.cif"])
    opts = options_from_arguments(args)
    assert opts.model.seed == 7 and opts.msa == MsaOptions(msa_db="db.fasta", msa_iterations=2)
    assert opts.templates == TemplateOptions(source="db.npz", custom=("a.pdb", "b.cif"), max_templates=2,
                                             search="phmmer", progress=False)
    assert opts.relax == RelaxOptions(backend="rosetta", config=RelaxConfig(stiffness=5.0))
    assert opts.outputs == OutputOptions(fmt="cif", plots=False, progress=False)
    assert opts.run.workers == 2 and opts.run.use_ray
    assert opts.relax_settings == RelaxConfig(stiffness=5.0, backend="rosetta", seed=7)
    # defaults: the command line's are the groups' own
    d = options_from_arguments(build_parser().parse_args(["x.fasta", "--out", str(tmp_path)]))
    assert d == PredictOptions(relax=RelaxOptions(config=RelaxConfig()))


@pytest.mark.parametrize("make, message", [
    (lambda: TemplateOptions(max_templates=2), "without --templates"),
    (lambda: TemplateOptions(source="db.npz", max_date="2021-02-30"), "YYYY-MM-DD"),
    (lambda: TemplateOptions(source="db.npz", offline=True), "without --templates pdb"),
    (lambda: RelaxOptions(backend="amber"), "openmm, rosetta or none"),
    (lambda: OutputOptions(fmt="xml"), "pdb or cif"),
])
def test_each_group_is_validated_when_made(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# what docs/command-line.md says a rerun compares, by the flag of each option that changes a result
DOCUMENTED = {"--weights": "the weights (SHA-256)", "--num-recycles": "`--num-recycles`", "--seed": "`--seed`",
              "--msa": "`--msa`", "--msa-db": "`--msa-db` (path, size, iterations)",
              "--msa-iterations": "`--msa-db` (path, size, iterations)", "--native": "`--native` files",
              "--templates": "the\n  templates", "--custom-templates": "the `--custom-templates` files' content",
              "--max-templates": "every template option", "--max-template-date": "every template option",
              "--template-max-identity": "every template option", "--template-search": "every template option",
              "--pdb-mirror": "the mirror", "--relax": "`--relax` and every relax setting",
              "--format": "`--format`", "--no-plots": "plots"}


def test_the_docs_list_every_option_a_rerun_compares():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "command-line.md").read_text()
    compared = text.split("the fingerprint is the same:", 1)[1].split("- and every output file", 1)[0]
    flags = {f.metadata.get("flag") or "--" + f.name.replace("_", "-")
             for cls in GROUPS.values() for f in dataclasses.fields(cls)
             if f.metadata.get("result", True) and f.metadata.get("cli", True)}
    assert flags == set(DOCUMENTED)
    for flag, phrase in DOCUMENTED.items():
        assert phrase in compared, flag
