"""Figures and verdict for residual_scaling; see `depthlab studies residual_scaling`.

python analysis/residual_scaling.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("residual_scaling"))
