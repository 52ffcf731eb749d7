"""``sos.check``: scan a store and, if asked, repair what is safe."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sos.check.problems import Problem, Progress


def check(
    path: str | os.PathLike[str], repair: bool = False, *, progress: Progress | None = None
) -> list[Problem]:
    """Every problem found in the store at ``path``; with ``repair``, fix the safe ones.

    Foreign files (a README, editor swap files, ``*.orig``) are not problems:
    readers ignore them by design. A ``*.json`` file at the top or in a
    fan-out directory is one, though, whatever it holds (``invalid-json``,
    ``foreign-file`` or ``misplaced``): it looks like data, so it is never
    passed over in silence. Raises :class:`Error` if ``path`` is not a
    store at all. ``progress``, if given, is called with the number of files
    to read and returns an object whose ``update(1)`` is called per file
    (``functools.partial(tqdm.tqdm, ...)`` fits); the command line uses it.
    Inside a git work tree, every path git lists as unmerged is reported
    (``unmerged``), also when no file shows conflict markers (a modify/delete
    conflict).

    A repair that cannot write what it means to (a full disk, a quota, the
    object store refusing) does not end the others; then :class:`Error` is
    raised, naming each repair not done and what is left to do, and its
    ``problems`` holds every finding with what was done to it.
    """
    # Imported here: `import sos` gives this function (its name must win over
    # the sos.check package's), and only a check pays for loading the checker.
    from dataclasses import replace

    from sos import txn as _txn
    from sos.check.files import _open_files
    from sos.check.problems import RepairFailed, _not_done
    from sos.check.repair import _Repair
    from sos.check.runs import _pending
    from sos.check.scan import _Scan
    from sos.check.schema import schema_problems
    from sos.errors import Error

    files = _open_files(path)
    try:
        if not repair:
            first = _Scan(files, progress)
            problems = first.run()
            problems += schema_problems(first)
            if not problems:
                return []
            progress = None  # the second pass, under the lock, is quiet
        with files.lock():
            finished: list[Problem] = []
            if repair and _txn.pending(files.storage):
                # Roll the committed transaction forward first: it changes files.
                pending = _pending(files)
                finished = [replace(pending, action="finished: rolled forward")]
                try:
                    _txn.recover(files.storage)
                except (OSError, Error) as exc:
                    failed = _not_done(pending, exc)
                    raise RepairFailed.of(files.url, [failed], [failed]) from exc
            scan = _Scan(files, progress, repair)
            problems = scan.run()
            if repair:
                problems = finished + _Repair(scan).run(problems)
            problems += schema_problems(scan)  # never repaired: a person decides
    finally:
        files.close()
    return problems
