"""`python -m moss_lab.cli` is `moss-lab`."""
import sys

from . import main

sys.exit(main())
