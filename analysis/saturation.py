"""Figures and verdict for saturation; see `depthlab studies saturation`.

python analysis/saturation.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("saturation"))
