"""Edge of chaos: figures and verdict for a +experiment=edge_of_chaos sweep.

python analysis/edge_of_chaos.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("edge_of_chaos"))
