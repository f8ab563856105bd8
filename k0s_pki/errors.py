"""The one error type of k0s_pki.

Every failure an admin can cause (a bad flag, a corrupt PEM, a key that does
not match its certificate, an unwritable directory) is raised as
:class:`PkiError` with a message that is the whole story on one line; the CLI
prints it and exits non-zero. Anything else escaping is a bug.
"""


class PkiError(Exception):
    """A problem with the input or the PKI directory, explained in one line."""
