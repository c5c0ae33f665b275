"""Figures and verdict for dynamics; see `depthlab studies dynamics`.

python analysis/dynamics.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("dynamics"))
