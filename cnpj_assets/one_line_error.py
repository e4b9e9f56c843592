"""Errors whose message is the whole story: the CLI prints them as one line, no traceback."""


class OneLineError(Exception):
    """A mistake in the setting or the rights, or a lost server: what happened and what to do.

    Its message never carries a password (URLs are redacted where it is made).
    """
