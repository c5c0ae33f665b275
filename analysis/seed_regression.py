"""Figures and verdict for seed_regression; see `depthlab studies seed_regression`.

python analysis/seed_regression.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("seed_regression"))
