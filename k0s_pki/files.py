"""Crash-safe files: atomic writes, key/cert pairs, backups, permission checks.

Modes: private keys ``0600``, everything else (certificates, CSRs, ``sa.pub``)
``0644``; kubeconfigs embed a private key, so they are ``0600`` too.

Atomic write: the data goes to a temporary file in the target's directory
(``.<name>.tmp-<random>``), which is fsynced and renamed over the target;
then the directory is fsynced so the rename itself is durable. A reader sees
the old file or the new one, never a part.

A key/cert pair needs more than two atomic writes, since a crash between them
would leave a new key beside an old certificate. :func:`write_pair` stages
both first, then renames them into place, key first::

    1. write X.key.next          (atomic)      crash here: X.key.next alone
    2. write X.crt.next          (atomic)      crash here: both .next files
    3. rename X.key.next -> X.key              crash here: X.crt.next alone
    4. rename X.crt.next -> X.crt

:func:`recover_pair`, run before any pair is read, finishes the job: with
``X.crt.next`` present the staged pair was complete, so it rolls forward;
``X.key.next`` alone is an unfinished staging and is removed. A reader that
is not us (a server reloading its files) can only meet the mismatch during
the instant between steps 3 and 4, and fails its reload rather than serving
a wrong key.
"""

import os
import secrets
import shutil
import stat
from pathlib import Path

from k0s_pki.errors import PkiError

KEY_MODE = 0o600
PUBLIC_MODE = 0o644
NEXT_SUFFIX = ".next"


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Args:
        path: the target file; its directory is created if missing.
        data: the new content.
        mode: permission bits of the new file (umask does not apply).

    Raises:
        PkiError: the directory cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise PkiError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_pair(key_path: Path, cert_path: Path, key_pem: bytes, cert_pem: bytes) -> None:
    """Write a private key and its certificate so that a crash never splits them.

    See the module docstring for the steps and :func:`recover_pair` for the
    recovery.
    """
    key_next, cert_next = _next(key_path), _next(cert_path)
    atomic_write(key_next, key_pem, KEY_MODE)
    atomic_write(cert_next, cert_pem, PUBLIC_MODE)
    try:
        os.replace(key_next, key_path)
        os.replace(cert_next, cert_path)
        fsync_dir(cert_path.parent)
    except OSError as exc:
        raise PkiError(f"cannot write {cert_path}: {exc.strerror or exc}") from None


def recover_pair(key_path: Path, cert_path: Path) -> bool:
    """Finish or undo a :func:`write_pair` that a crash interrupted.

    Returns:
        True if anything had to be repaired.
    """
    key_next, cert_next = _next(key_path), _next(cert_path)
    if cert_next.exists():
        if key_next.exists():
            os.replace(key_next, key_path)
        os.replace(cert_next, cert_path)
    elif key_next.exists():
        key_next.unlink()
    else:
        return False
    fsync_dir(cert_path.parent)
    return True


def read_file(path: Path) -> bytes:
    """Read a file, turning OS errors into one clear line.

    Raises:
        PkiError: missing or unreadable.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(f"{path}: file not found") from None
    except OSError as exc:
        raise PkiError(f"{path}: cannot read: {exc.strerror or exc}") from None


def backup(paths: list[Path], root: Path, backup_dir: Path) -> None:
    """Copy existing files (with their modes) under ``backup_dir``, keeping their
    path relative to ``root`` (or their bare name if outside it)."""
    for path in paths:
        if not path.exists():
            continue
        rel = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
        target = backup_dir / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(path, target)
            with open(target, "rb") as fh:
                os.fsync(fh.fileno())
        except OSError as exc:
            raise PkiError(f"cannot back up {path} to {target}: {exc.strerror or exc}") from None


def check_writable(directory: Path) -> None:
    """Prove a directory can take new files by creating and removing one.

    Run on every target directory before any change, so that a plan fails
    whole instead of half-applied. (``os.access`` would lie for root.)

    Raises:
        PkiError: it cannot be created or written.
    """
    existing = directory
    while not existing.exists():
        existing = existing.parent
    probe = existing / f".k0s-pki-probe-{secrets.token_hex(4)}"
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PkiError(f"cannot write to {directory}: {exc.strerror or exc}") from None


def permission_problem(path: Path, private: bool) -> str | None:
    """Describe what is wrong with a file's mode, or None if nothing is.

    Private keys must not be readable or writable by group or others;
    public files must not be writable by group or others.
    """
    mode = stat.S_IMODE(path.stat().st_mode)
    forbidden = 0o077 if private else 0o022
    if mode & forbidden:
        want = "0600" if private else "0644"
        return f"mode {mode:04o} is too open (want {want})"
    return None


def fsync_dir(directory: Path) -> None:
    """Make renames inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _next(path: Path) -> Path:
    return path.with_name(path.name + NEXT_SUFFIX)
