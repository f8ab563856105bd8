"""The one error of the snapshot package: a file or directory we refuse, in one line."""


class SnapshotError(Exception):
    """A snapshot or database that cannot be used; str() is a one-line reason."""
