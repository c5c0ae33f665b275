"""The textbook net against the NumPy reference and scikit-learn: figures, verdict.

python analysis/textbook.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("textbook"))
