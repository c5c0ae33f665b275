"""Figures and verdict for degradation; see `depthlab studies degradation`.

python analysis/degradation.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("degradation"))
