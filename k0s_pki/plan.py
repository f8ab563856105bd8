"""Change the PKI directory all or nothing: plan every write, check, then write.

Commands first compute everything in memory (keys generated, certificates
signed, inputs validated); any bad input raises before a single byte is
written. Then :meth:`Plan.apply` proves every target directory writable,
copies the files about to be replaced into one timestamped backup
directory, and performs the writes in order.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from k0s_pki.files import backup, check_writable
from k0s_pki.layout import Layout


@dataclass(frozen=True)
class Step:
    """One change: what it is (for output), the files it writes, how."""

    description: str
    paths: tuple[Path, ...]
    write: Callable[[], None]


@dataclass
class Plan:
    """An ordered list of :class:`Step` for one PKI directory."""

    layout: Layout
    steps: list[Step] = field(default_factory=list)

    def add(self, description: str, paths: list[Path], write: Callable[[], None]) -> None:
        """Append a step."""
        self.steps.append(Step(description, tuple(paths), write))

    def apply(self) -> Path | None:
        """Back up the files that will be replaced, then run every step.

        Returns:
            The backup directory, or None if nothing existing was replaced.

        Raises:
            PkiError: a target directory is not writable (nothing is changed then).
        """
        targets = [p for step in self.steps for p in step.paths]
        for directory in sorted({p.parent for p in targets}):
            check_writable(directory)
        replaced = [p for p in targets if p.exists()]
        backup_dir = None
        if replaced:
            backup_dir = self.layout.new_backup_dir()
            check_writable(backup_dir)
            backup(replaced, self.layout.pki_dir, backup_dir)
        for step in self.steps:
            step.write()
        return backup_dir
