"""Saddle points (Hessian curvature): figures and verdict for a +experiment=curvature sweep.

python analysis/curvature.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("curvature"))
