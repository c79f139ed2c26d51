"""`python -m monitoring.bench [SECTION…]`: `make bench`."""

import sys

from monitoring.bench import main

main(sys.argv[1:])
