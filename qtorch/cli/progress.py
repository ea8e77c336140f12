"""Whether a command draws progress bars: only on a terminal (in a log their carriage returns and escape codes are
noise), and never with --no-progress."""
import sys


def show_progress(args) -> bool:
    return not args.no_progress and sys.stderr.isatty()
