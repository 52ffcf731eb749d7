"""Acting on a scan's findings, one handler per code, under the store lock."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import replace

from sos import format as _format
from sos import git as _git
from sos.check.manifest import _readable_runs, _rebuilt
from sos.check.problems import Code, Problem, RepairFailed, _not_done
from sos.check.runs import _missing_runs, _parse_runs
from sos.check.scan import LOST_FOUND_RECORD, _Scan
from sos.errors import CorruptError, Error
from sos.format.names import LOST_FOUND
from sos.format.order import (
    Order,
    guess_order,
)

# A rewrite of the manifest that lost this many races in a row to appends
# (object storage: they take no lock) gives up, nothing written, not spin.
_SWAP_TRIES = 5


# -- repair ----------------------------------------------------------------------------


class _Repair:
    """Acts on a scan's findings (the lock is held): one handler per code."""

    def __init__(self, scan: _Scan) -> None:
        self.scan = scan
        self.files = scan.files
        self.by_path = {scan.where(doc.name): doc for doc in scan.docs}
        self.moved_items: set[str] = set()
        self.kept: Order | None = None  # the rewritten manifest
        self.rebuilt = ""  # what rebuilding it did, if it was rebuilt
        self.lost: list[str] = []  # ids of the items moved to lost+found, in order
        self.meanwhile = ""  # what the manifest's rewrite kept of appends made meanwhile
        self.refused: str | None = None  # why the manifest could not be rewritten

    def run(self, problems: list[Problem]) -> list[Problem]:
        """The findings with what was done; those repair leaves to a person unchanged.

        Files are settled first, then the List's manifest, rewritten once,
        because moving a misplaced item into place can find a "missing" one.
        """
        done: list[Problem | None] = [None] * len(problems)
        failed: list[Problem] = []
        for manifest_phase in (False, True):
            for index, problem in enumerate(problems):
                if problem.code.settles_the_manifest != manifest_phase:
                    continue
                handler = self.HANDLERS.get(problem.code)
                if handler is None:
                    done[index] = problem
                    continue
                try:
                    done[index] = handler(self, problem)
                except (OSError, Error) as exc:  # the others are tried all the same
                    failed.append(_not_done(problem, exc))
                    done[index] = failed[-1]
        if self.lost:
            self._record_lost()
        result = [p for p in done if p is not None]
        if failed:
            raise RepairFailed.of(self.scan.root, result, failed)
        return result

    def _record_lost(self) -> None:
        """Add the items just moved to lost+found, in the order they were
        moved (:func:`guess_order`'s), to its record ``lost+found/order.txt``
        (a manifest): the file names are hashes, and ``sos adopt`` reads the
        record to put the items back in their order."""
        name = LOST_FOUND_RECORD
        try:
            runs = _parse_runs(self.files.read(name))[0]
        except (FileNotFoundError, CorruptError):  # none yet, or not a file: started anew
            runs = []
        record = Order.unique([*runs, *Order.from_ids(self.lost).runs])
        self.files.write(name, record.encode())

    # -- one handler per code --------------------------------------------------------

    def _misplaced(self, p: Problem) -> Problem:
        doc = self.by_path[p.path]
        target = _format.key_relpath(p.key or "")
        target_path = self.scan.where(target)
        if self.files.exists(target):
            self.files.remove([doc.name])
            action = f"removed: {target_path} holds the same document"
        else:
            self.files.move(doc.name, target)
            action = f"moved to {target_path}"
        if self.scan.kind == "list" and doc.key is not None:
            self.scan.items[doc.key] = target
            self.moved_items.add(doc.key)
        return replace(p, action=action)

    def _directory_marker(self, p: Problem) -> Problem:
        gone = self.files.remove_marker(self.scan.markers[p.path])
        return replace(p, action="removed" if gone else "gone already")

    def _temp_file(self, p: Problem) -> Problem:
        self.files.remove([self.scan.names[p.path]])
        return replace(p, action="removed (no writer holds the store lock)")

    def _metadata(self, p: Problem) -> Problem:
        kind = self.scan.kind or "dict"
        self.files.write(_format.METADATA_NAME, _format.encode_metadata(kind))
        return replace(p, action=f"wrote {p.path} for a {kind} store")

    def _orphan_item(self, p: Problem) -> Problem:
        kept = self._rewrite_manifest()
        if p.key is not None and kept.contains(p.key):
            return replace(p, action="named in the rewritten manifest")
        name = self.scan.items.get(p.key or "", "")  # older than any grace: the scan said so
        dest = f"{LOST_FOUND}/{posixpath.basename(name)}"
        self.files.move(name, dest)
        if p.key is not None:
            self.lost.append(p.key)
        dest_path = self.scan.where(dest)
        return replace(
            p,
            action=f"moved to {dest_path}; to bring it back: "
            f"{self.scan.cmd('adopt', self.scan.root, dest_path)}",
        )

    def _bad_manifest(self, p: Problem) -> Problem:
        self._rewrite_manifest()
        if self.scan.manifest.rebuild:
            return replace(p, action=self.rebuilt + self.meanwhile)
        action = f"rewrote {p.path} with every valid run kept{self.meanwhile}"
        if _format.ORDER_NAME in self.scan.unmerged:  # settled: tell git, as git mergetool does
            action += f", then {_git.mark_resolved(self.scan.root, _format.ORDER_NAME)}"
        return replace(p, action=action)

    def _missing_item(self, p: Problem) -> Problem:
        self._rewrite_manifest()
        if p.key in self.moved_items:
            return replace(p, action="found: its file was moved into place" + self.meanwhile)
        return replace(p, action="dropped from the manifest" + self.meanwhile)

    def _duplicate_entry(self, p: Problem) -> Problem:
        self._rewrite_manifest()
        return replace(p, action="kept the first, dropped the rest" + self.meanwhile)

    HANDLERS: dict[Code, Callable[[_Repair, Problem], Problem]] = {
        Code.MISPLACED: _misplaced,
        Code.TEMP_FILE: _temp_file,
        Code.DIRECTORY_MARKER: _directory_marker,
        Code.METADATA: _metadata,
        Code.ORPHAN_ITEM: _orphan_item,
        Code.BAD_MANIFEST: _bad_manifest,
        Code.MISSING_ITEM: _missing_item,
        Code.DUPLICATE_ENTRY: _duplicate_entry,
    }

    def _rewrite_manifest(self) -> Order:
        """Write the List's manifest once: every valid run kept, each id once,
        missing items dropped (a damaged item file is still the user's item).
        A manifest to rebuild (missing, empty, cut, unreadable) also gets every
        item file its readable lines do not name, in :func:`guess_order`'s
        order: an item that had a place is never sent to lost+found.
        Arithmetic on runs: a manifest naming a billion ids costs its runs."""
        if self.kept is not None:
            return self.kept
        if self.refused is not None:  # each finding that needed it says so
            raise Error(self.refused, self.scan.root)
        scan = self.scan
        new = Order.unique(scan.manifest.runs)
        new = new.without(_missing_runs(new, scan.items, self.files))
        if scan.manifest.rebuild:
            named = len(new)
            rest = guess_order(scan.unnamed(new), scan.earliest)
            new = Order([*new.runs, *rest.runs])
            self.rebuilt = _rebuilt(scan.where(_format.ORDER_NAME), named, rest)
        self.kept = self._swap_manifest(new)
        return self.kept

    def _swap_manifest(self, planned: Order) -> Order:
        """Replace the manifest with ``planned`` only if it still holds the
        bytes the scan judged (compare-and-swap on their version), and return
        what was written. Where appends take no lock (object storage) one may
        land between the scan and this write: then the ids the manifest
        gained go after ``planned``, as if appended just after the repair, and
        the swap is tried again on the new version. After :data:`_SWAP_TRIES`
        lost races nothing is written and :class:`Error` says so. Locally the
        lock held excludes appenders, and the first swap wins."""
        name = _format.ORDER_NAME
        version, new, gained = self.scan.manifest.version, planned, 0
        for _ in range(_SWAP_TRIES):
            if self.scan.manifest.unreadable:  # not a file: no append changes it
                self.files.write(name, new.encode())
                return new
            if self.files.swap(name, new.encode(), version):
                if gained:
                    self.meanwhile = (
                        f"; kept the {gained} item(s) appended while repair ran, at the end"
                    )
                return new
            try:
                current, version = self.files.read_versioned(name)
            except FileNotFoundError:
                current, version = b"", None
            appended = self._appended(current)
            # At the end, where an append puts them, also those the scan
            # listed (an append between its read of order.txt and its listing).
            new = Order([*planned.without(appended.runs).runs, *appended.runs])
            gained = len(appended)
        where = self.scan.where(name)
        self.refused = (
            f"{self.scan.root}: another writer kept changing {where} while repair rewrote "
            f"it ({_SWAP_TRIES} tries, each after re-reading it); the manifest was left "
            "as it was"
        )
        raise Error(self.refused, self.scan.root)

    def _appended(self, current: bytes) -> Order:
        """The ids the manifest names now that no line of the manifest the
        scan read does, in its order: items appended since the scan (only an
        append adds ids while repair holds the lock,
        and an appender writes its items before it names them, so no file is
        looked for: the window between a try's read and its swap stays two
        requests, as short as an appender's). Only whole lines count: an
        appender writes every line whole. Had the scan found no manifest at
        all, nothing says what names these ids, and each is looked for."""
        gained = Order.unique(_readable_runs(current)).without(self.scan.manifest.seen)
        if self.scan.manifest.version is None:
            gained = gained.without(_missing_runs(gained, self.scan.items, self.files))
        return gained
