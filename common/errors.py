"""The exception types the CLIs turn into a one-line message (never a traceback) and an exit status."""


class NanolinkError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do. Exit status 1."""
    exit_code = 1


class UsageError(NanolinkError):
    """A bad command-line argument (a value out of range, options that do not go together). Exit status 2,
    like argparse's own refusals."""
    exit_code = 2
