"""Figures and verdict for finite_width; see `depthlab studies finite_width`.

python analysis/finite_width.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("finite_width"))
