"""The textbook net: both losses over one lr grid, against the NumPy reference: figures
(summary: lr sensitivity and the slowdown on badly wrong samples; reference_agreement;
accuracy) and the verdict.

python analysis/textbook.py SWEEP_DIR [--out DIR]
"""

import sys

from depthlab.studies.common import main

if __name__ == "__main__":
    sys.exit(main("textbook"))
