import gzip
import os

import gemmi
import numpy as np
import pytest

from af2struct import Protein, StructureError, load_structure, save_structure
from af2struct.common.io import read_structure, structure_name


@pytest.mark.parametrize("ext", [".pdb", ".cif"])
def test_round_trip_exact(real_structures, tmp_path, ext):
    for path in real_structures:
        p = load_structure(path)
        out = save_structure(p, tmp_path / f"{structure_name(path)}{ext}")
        q = load_structure(out)
        assert q.sequence == p.sequence
        assert np.array_equal(q.residue_index, p.residue_index)
        assert np.array_equal(q.atom_mask, p.atom_mask)
        assert np.array_equal(q.atom_positions, p.atom_positions)  # same 3-decimal values
        assert np.allclose(q.b_factors, p.b_factors, atol=0.005)
        # and once more: the text is a fixed point
        again = save_structure(q, tmp_path / f"again{ext}")
        assert again.read_text() == out.read_text()


def test_pdb_matches_source_coordinates(real_structures):
    """Coordinates equal what an independent reader (gemmi directly) sees in the file."""
    path = real_structures[2]
    p = load_structure(path)
    st = gemmi.read_structure(str(path))
    ca = [r["CA"][0].pos for r in st[0][0]]
    assert np.allclose(p.ca_positions, [[a.x, a.y, a.z] for a in ca], atol=1e-4)


def test_gzipped_cif(real_structures, tmp_path):
    p = load_structure(real_structures[1])
    cif = save_structure(p, tmp_path / "x.cif")
    gz = tmp_path / "x.cif.gz"
    gz.write_bytes(gzip.compress(cif.read_bytes()))
    q = load_structure(gz)
    assert np.array_equal(q.atom_positions, p.atom_positions)


def test_plddt_in_b_factor_column(real_structures, tmp_path):
    p = load_structure(real_structures[0])
    plddt = np.linspace(10, 99, len(p)).round(2)
    out = save_structure(p.with_residue_b_factors(plddt), tmp_path / "m.pdb")
    st = gemmi.read_structure(str(out))
    b = [r["CA"][0].b_iso for r in st[0][0]]
    assert np.allclose(b, plddt, atol=0.006)


def test_messy_file(data_dir, caplog):
    rec = read_structure(data_dir / "messy_1aki.pdb")
    p = rec.protein
    # CSO 7 skipped and reported; MSE 12 read as MET with SE -> SD; waters/ligands dropped
    assert 7 not in p.residue_index.tolist()
    assert "CSO" in caplog.text and rec.skipped == ("CSO A7",)
    i = p.residue_index.tolist().index(12)
    assert p.sequence[i] == "M" and rec.source_resnames[i] == "MSE" and rec.is_modified[i]
    assert p.atom_mask[i, 18] == 1 and np.allclose(p.atom_positions[i, 18], [32.634, 19.986, 2.235])
    # first altloc kept
    j = p.residue_index.tolist().index(13)
    assert np.allclose(p.atom_positions[j, 1], [38.387, 19.385, 6.579])
    assert len(p) == 13 and "X" not in p.sequence


def test_missing_atoms_are_masked(real_structures, tmp_path):
    p = load_structure(real_structures[1])
    mask = p.atom_mask.copy()
    mask[5, 3] = 0  # drop CB and the rest of the side chain of residue 6 (atom37: N CA C CB O ...)
    mask[5, 5:] = 0
    q = load_structure(save_structure(p.replace(atom_mask=mask), tmp_path / "m.pdb"))
    assert q.atom_mask[5].sum() == 4 and np.array_equal(q.atom_mask, mask)


def test_chain_selection(real_structures, tmp_path):
    p = load_structure(real_structures[0])
    two = Protein(
        aatype=np.concatenate([p.aatype, p.aatype]),
        atom_positions=np.concatenate([p.atom_positions, p.atom_positions + 30]),
        atom_mask=np.concatenate([p.atom_mask, p.atom_mask]),
        residue_index=np.concatenate([p.residue_index, p.residue_index]),
        chain_id=np.array(["A"] * len(p) + ["B"] * len(p)),
    )
    path = save_structure(two, tmp_path / "ab.cif")
    both = load_structure(path)
    assert len(both) == 2 * len(p) and list(np.unique(both.chain_id)) == ["A", "B"]
    b = load_structure(path, chain="B")
    m = p.atom_mask[..., None]
    assert b.chains == ("B",) and np.allclose(b.atom_positions, (p.atom_positions + 30) * m, atol=1e-3)
    with pytest.raises(StructureError, match=r"chain 'Z' not found; chains present: A, B"):
        load_structure(path, chain="Z")


def test_bad_inputs(tmp_path, real_structures):
    with pytest.raises(StructureError, match="no such file"):
        load_structure(tmp_path / "missing.pdb")
    empty = tmp_path / "empty.pdb"
    empty.write_text("")
    with pytest.raises(StructureError, match="empty file"):
        load_structure(empty)
    text = tmp_path / "notes.pdb"
    text.write_text("this is not a structure\njust some words\n")
    with pytest.raises(StructureError):
        load_structure(text)
    binary = tmp_path / "noise.cif"
    binary.write_bytes(os.urandom(2000))
    with pytest.raises(StructureError):
        load_structure(binary)
    trunc = tmp_path / "trunc.pdb.gz"
    trunc.write_bytes(real_structures[1].read_bytes()[:3000])
    with pytest.raises(StructureError, match="corrupt or truncated gzip"):
        load_structure(trunc)
    water = tmp_path / "water.pdb"
    water.write_text(
        "HETATM    1  O   HOH A   1      10.000  10.000  10.000  1.00 30.00           O\nEND\n"
    )
    with pytest.raises(StructureError, match="no protein residues"):
        load_structure(water)


def test_atomic_write(real_structures, tmp_path, monkeypatch):
    p = load_structure(real_structures[0])
    target = save_structure(p, tmp_path / "out.pdb")
    before = target.read_text()

    import af2struct.common.io as io_mod

    def boom(*_):
        raise RuntimeError("disk full")

    monkeypatch.setattr(io_mod, "to_pdb_string", boom)
    with pytest.raises(RuntimeError):
        save_structure(p, target)
    assert target.read_text() == before
    assert [f.name for f in tmp_path.iterdir()] == ["out.pdb"]  # no temp files left
    with pytest.raises(StructureError, match="extension"):
        save_structure(p, tmp_path / "out.xyz")


def test_modelcif_says_where_the_target_sequence_comes_from(real_structures):
    """A natural target is not 'designed': UniProt when the FASTA header names the entry, else
    unknown ('.', as AlphaFold writes it). python-modelcif reads both back."""
    import io

    import gemmi
    import modelcif.reader

    from af2struct import load_structure
    from af2struct.common.modelcif import to_modelcif_string

    p = load_structure(real_structures[0])
    for header, origin in (("sp|P69905|HBA_HUMAN Hemoglobin subunit alpha", "reference database"),
                           ("my protein", None)):
        text = to_modelcif_string(p, "t", description=header)
        block = gemmi.cif.read_string(text).sole_block()
        value = lambda key: gemmi.cif.as_string(block.find_values(key)[0])  # noqa: E731
        assert block.find_values("_ma_target_entity.origin")[0] == (".") if origin is None else \
            value("_ma_target_entity.origin") == origin
        assert "designed" not in text
        if origin:
            assert value("_ma_target_ref_db_details.db_accession") == "P69905"
            assert value("_ma_target_ref_db_details.db_code") == "HBA_HUMAN"
        system, = modelcif.reader.read(io.StringIO(text))
        assert len(system.entities) >= 1
