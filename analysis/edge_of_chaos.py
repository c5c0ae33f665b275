"""Figures and verdict for edge_of_chaos; see `depthlab studies edge_of_chaos`.

python analysis/edge_of_chaos.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("edge_of_chaos"))
