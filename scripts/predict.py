#!/usr/bin/env python
"""Same as `af2struct predict` (see --help)."""

import sys

from af2struct.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
