"""The seed's regression demo: fitted curves, loss and verdict for +experiment=seed_regression.

python analysis/seed_regression.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("seed_regression"))
