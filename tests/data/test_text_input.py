"""Sequence files read as the field writes them: FASTA line ends, encodings, and what is not a file."""

import os

import pytest

from af2struct.data.msa import MsaError, parse_fasta, read_fasta, read_text_file
from af2struct.predict.targets import InputError, read_targets

SEQ = "EAYKKAKQASQDAEQAAKDAENASKEAEEAAKEAVNLK"


@pytest.mark.parametrize("sep", ["\u2028", "\x85", "\x0c", "\x1c", "\u2029"])
def test_a_header_with_unicode_line_separators_stays_a_header(sep):
    (name, seq), = parse_fasta(f">WHAT{sep}TEST header\n{SEQ}\n", full_headers=True)
    assert seq == SEQ and name.startswith("WHAT")


def test_crlf_bom_and_latin1(tmp_path):
    f = tmp_path / "a.fasta"
    f.write_bytes(b"\xef\xbb\xbf>bom\r\n" + SEQ.encode() + b"\r\n")
    assert read_fasta(f) == [("bom", SEQ)]
    f.write_bytes(b">prot\xe9ine caf\xe9\n" + SEQ.encode() + b"\n")  # Latin-1
    assert read_fasta(f, full_headers=True) == [("prot\u00e9ine caf\u00e9", SEQ)]
    f.write_bytes(b">x\n" + b"\0\1\2" * 10)
    with pytest.raises(MsaError, match="binary"):
        read_fasta(f)


def test_folders_fifos_and_devices_are_named_for_what_they_are(tmp_path):
    with pytest.raises(MsaError, match="is a folder"):
        read_text_file(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(MsaError, match="FIFO"):
        read_text_file(fifo)
    with pytest.raises(InputError, match="device"):
        read_targets("/dev/zero")
    with pytest.raises(InputError, match="no such file"):
        read_targets(str(tmp_path / "missing.fasta"))
    (tmp_path / "empty.fasta").write_text("\n\n")
    with pytest.raises(InputError, match="empty FASTA"):
        read_targets(str(tmp_path / "empty.fasta"))
