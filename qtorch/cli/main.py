"""Entry point of `python -m qtorch` / `qtorch`: parse, dispatch, and turn user errors into one line + exit code.

Exit status: 0 success; 2 bad arguments (unknown model, scheme, device name); 1 an environment problem (missing
optional package, no GPU for --device cuda). Errors print one line `qtorch: error: ...` and no traceback.
"""
import argparse
import sys

from qtorch.cli.errors import ENVIRONMENT_EXIT, USAGE_EXIT, CLIError


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing the usage block and exiting."""

    def error(self, message):
        raise CLIError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    from qtorch.cli import bench, demo

    parser = _Parser(prog="qtorch", description="qtorch: quantized and mixed-precision deep learning for PyTorch.")
    sub = parser.add_subparsers(dest="command", metavar="{demo,bench}", parser_class=_Parser)
    sub.required = True
    demo.add_parser(sub)
    bench.add_parser(sub)
    return parser


def main(argv=None) -> int:
    from qtorch.models.minilm import MissingDependencyError

    try:
        args = build_parser().parse_args(argv)
    except CLIError as exc:
        print(f"qtorch: error: {exc}", file=sys.stderr)
        return USAGE_EXIT
    try:
        return args.run(args)
    except CLIError as exc:
        print(f"qtorch: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except MissingDependencyError as exc:
        print(f"qtorch: error: {exc}", file=sys.stderr)
        return ENVIRONMENT_EXIT
    except KeyboardInterrupt:
        print("qtorch: interrupted", file=sys.stderr)
        return 130
