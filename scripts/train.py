#!/usr/bin/env python
"""Same as `af2struct train` (see --help)."""

import sys

from af2struct.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
