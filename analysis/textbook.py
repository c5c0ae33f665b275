"""Figures and verdict for textbook; see `depthlab studies textbook`.

python analysis/textbook.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("textbook"))
