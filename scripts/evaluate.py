#!/usr/bin/env python
"""Same as `af2struct evaluate` (see --help)."""

import sys

from af2struct.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
