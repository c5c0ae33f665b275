"""Figures and verdict for vanishing; see `depthlab studies vanishing`.

python analysis/vanishing.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("vanishing"))
