"""Figures and verdict for exploding; see `depthlab studies exploding`.

python analysis/exploding.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("exploding"))
