#!/usr/bin/env python
"""Same as `af2struct relax` (see --help)."""

import sys

from af2struct.cli.relax import main

if __name__ == "__main__":
    sys.exit(main())
