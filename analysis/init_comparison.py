"""Kaiming against Xavier init: figures and verdict for a +experiment=init_comparison sweep.

python analysis/init_comparison.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("init_comparison"))
