"""Figures and verdict for init_comparison; see `depthlab studies init_comparison`.

python analysis/init_comparison.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("init_comparison"))
