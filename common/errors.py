"""The one exception type the CLIs turn into a one-line message (never a traceback)."""


class NanolinkError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""
