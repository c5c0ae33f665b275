"""Figures and verdict for dead_units; see `depthlab studies dead_units`.

python analysis/dead_units.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("dead_units"))
