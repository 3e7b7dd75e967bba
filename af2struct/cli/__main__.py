import sys

from af2struct.cli import main

sys.exit(main())
