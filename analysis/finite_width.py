"""Finite width: figures and verdict for a +experiment=finite_width sweep.

python analysis/finite_width.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("finite_width"))
