"""Dynamical isometry: figures and verdict for a +experiment=isometry sweep.

python analysis/isometry.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("isometry"))
