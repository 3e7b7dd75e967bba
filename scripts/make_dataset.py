#!/usr/bin/env python
"""Convert a folder of PDB/mmCIF structures into a SidechainNet-format pickle (see --help)."""

import sys

from af2struct.cli.make_dataset import main

if __name__ == "__main__":
    sys.exit(main())
