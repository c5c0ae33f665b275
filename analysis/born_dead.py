"""Figures and verdict for born_dead; see `depthlab studies born_dead`.

python analysis/born_dead.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("born_dead"))
