"""`python -m bench`: the whole benchmark (what `make bench` runs)."""

import sys

from bench.run import main

sys.exit(main())
