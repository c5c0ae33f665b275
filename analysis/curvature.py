"""Figures and verdict for curvature; see `depthlab studies curvature`.

python analysis/curvature.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("curvature"))
