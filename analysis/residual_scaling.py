"""Residual scaling (naive, scaled_branches, skipinit): figures and verdict for a
+experiment=residual_scaling sweep.

python analysis/residual_scaling.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("residual_scaling"))
