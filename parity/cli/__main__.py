"""`python -m parity.cli ...`: the same as the resnet-parity command."""

import sys

from . import main

sys.exit(main())
