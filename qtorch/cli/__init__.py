"""The `qtorch` command line: `python -m qtorch demo` and `python -m qtorch bench`."""
