"""Outputs a structural biologist reads: pictures readable without the README, numbers as the
AlphaFold database writes them, ModelCIF's identification categories."""

import json
import re

import numpy as np

from af2struct.predict import plots


def test_distogram_picture_names_the_far_bin_and_the_masked_self_pairs(monkeypatch, tmp_path):
    figs = []
    monkeypatch.setattr(plots, "_save", lambda plt, fig, path: figs.append(fig))
    edges = np.linspace(2, 20, 37)
    probs = np.random.default_rng(0).dirichlet(np.ones(37), size=(12, 12)).astype(np.float32)
    plots.plot_distogram(probs, edges, tmp_path / "d.png", "x")
    fig, = figs
    dist_ax, bar_ax = fig.axes[0], fig.axes[2]
    labels = [t.get_text() for t in bar_ax.get_yticklabels()]
    assert labels[-1] == "\u2265 20"  # the far bin: 20 A or more
    assert bar_ax.get_ylabel() == "\u00c5" and "\u00c5" in fig.axes[1].get_title()
    legend = [t.get_text() for t in dist_ax.get_legend().get_texts()]
    assert legend == ["self-pair (not predicted)"]


def test_pae_json_and_confidence_are_rounded_and_modelcif_identifies_itself(tmp_path):
    from af2struct.cli.predict import main as predict_main
    from af2struct.model.checkpoint import save_checkpoint
    from af2struct.model.config import preset
    from af2struct.model.network import Af2StructModel

    model = Af2StructModel(preset("tiny"))
    w = save_checkpoint(tmp_path / "w.pt", model, model.config)
    out = tmp_path / "o"
    assert predict_main(["--sequence", "EAYKKAKQASQDAEQAAKDAENASKEAEEAAKEAVNLK", "--name", "q", "--out", str(out),
                         "--weights", str(w), "--relax", "none", "--format", "cif", "--no-plots", "--quiet"]) == 0
    text = (out / "q" / "pae.json").read_text()
    assert not re.search(r"\d\.\d{3,}", text)  # two decimals at most, no float32 noise
    conf = json.loads((out / "q" / "confidence.json").read_text())
    assert conf["mean_plddt"] == round(conf["mean_plddt"], 2)
    cif = (out / "q" / "unrelaxed.cif").read_text()
    assert "_audit_conform.dict_name" in cif and "mmcif_ma.dic" in cif and "_ma_target_entity.entity_id" in cif


def test_pae_json_maximum_covers_a_templated_pae_beyond_the_heads_range(tmp_path):
    """A templated model's PAE adds the ensemble's spread and can exceed the head's 31.75 A: the
    file's maximum then is the matrix's largest value, so no entry lies above it."""
    from types import SimpleNamespace

    from af2struct.predict.outputs import write_confidence

    target = SimpleNamespace(name="q", description="q")
    protein = SimpleNamespace(sequence="ACD")
    for pae, top in ((np.full((3, 3), 4.0), 31.75), (np.array([[0.5, 40.123, 3], [2, 0.4, 31.8], [1, 2, 0.3]]), 40.12)):
        pred = SimpleNamespace(plddt=np.array([90.0, 80.0, 70.0]), pae=pae, max_pae=31.75)
        write_confidence(tmp_path, target, pred, protein, plots=False)
        (entry,) = json.loads((tmp_path / "pae.json").read_text())
        assert entry["max_predicted_aligned_error"] == top
        assert max(map(max, entry["predicted_aligned_error"])) <= entry["max_predicted_aligned_error"]
