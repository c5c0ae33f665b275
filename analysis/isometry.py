"""Figures and verdict for isometry; see `depthlab studies isometry`.

python analysis/isometry.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("isometry"))
