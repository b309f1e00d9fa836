"""``python -m attrbound_lite.sweep CONFIG --out DIR`` (also ``torchrun ... -m attrbound_lite.sweep``)."""

import sys

from .cli import main

sys.exit(main())
