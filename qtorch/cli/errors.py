"""Errors the command line reports as one line (no traceback) with a non-zero exit status."""

USAGE_EXIT = 2  # a bad argument: unknown model, scheme, device name
ENVIRONMENT_EXIT = 1  # the machine lacks something: an optional package, a GPU


class CLIError(Exception):
    """A user error; the message is the whole report, exit_code the process status."""

    def __init__(self, message: str, exit_code: int = USAGE_EXIT):
        super().__init__(message)
        self.exit_code = exit_code
