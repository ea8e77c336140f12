"""python -m qtorch.analysis: see qtorch.analysis.cli."""
import sys

from qtorch.analysis.cli import main

sys.exit(main())
