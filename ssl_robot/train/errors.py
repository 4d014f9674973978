"""The error type of training problems a user can fix: a bad config value, a run directory of another method,
a missing dataset. `ssl-robot` prints user errors (ValueError, OSError) as one line and exits non-zero."""


class TrainError(ValueError):
    """A training input is wrong; the message names the bad value and where it came from."""
