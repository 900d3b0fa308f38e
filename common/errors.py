"""The exception types the CLIs turn into a one-line message (never a traceback) and an exit status."""


class NanolinkError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do. Exit status 1."""
    exit_code = 1


class UsageError(NanolinkError):
    """A bad command-line argument (a value out of range, options that do not go together). Exit status 2,
    like argparse's own refusals."""
    exit_code = 2


class WireError(ValueError):
    """A message that must be rejected; ``reason`` says why, ``stream`` names the sender if known."""

    def __init__(self, reason, stream=None, fingerprint_mismatch=False, too_big=False):
        ValueError.__init__(self, reason)
        self.reason = reason
        self.stream = stream
        self.fingerprint_mismatch = fingerprint_mismatch   # a well-formed frame of weights we do not hold
        self.too_big = too_big                             # over MAX_MESSAGE_BYTES (or a size over 4096)

