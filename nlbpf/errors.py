"""The one error type the CLI turns into a single line and a non-zero exit."""


class NlbpfError(Exception):
    """A problem the user can act on (bad input, missing bcc, not root...)."""

    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.exit_code = exit_code
