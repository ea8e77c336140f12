"""`python -m qtorch ...` and the `qtorch` console script."""
import sys

from qtorch.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
