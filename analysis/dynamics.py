"""Learning speed against depth: figures and verdict for a +experiment=dynamics sweep.

python analysis/dynamics.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("dynamics"))
