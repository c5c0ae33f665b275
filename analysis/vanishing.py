"""Vanishing gradients: figures and verdict for a +experiment=vanishing sweep.

python analysis/vanishing.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("vanishing"))
