"""A List's order manifest, judged against its item files: what a scan reports and a rebuild says.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from sos import format as _format
from sos.check.files import _Files, _Manifest
from sos.check.problems import Code, Problem
from sos.check.runs import _conflict_runs, _describe, _missing_runs, _parse_runs
from sos.errors import CorruptError
from sos.format.names import LOST_FOUND
from sos.format.order import (
    Order,
    Run,
    decode_runs,
    guess_order,
    repeated,
)
from sos.storage.base import Version

# How a rebuilt manifest orders the items no readable line names.
_GUESS = (
    "by number within each writer's id prefix, the prefixes by their items' "
    "earliest modification time (the order across prefixes is a best guess)"
)


def _rebuilt(path: str, named: int, rest: Order) -> str:
    """What a rebuild did, for the user: counts, and what is a guess."""
    prefixes = len({run.prefix for run in rest.runs})
    text = f"rebuilt {path} from the item files: "
    text += f"{named} in the order its readable lines give, then " if named else ""
    text += f"{len(rest)} by number within their writer's id prefix"
    if prefixes > 1:
        text += (
            f"; the order across the {prefixes} prefixes (by their items' earliest "
            "modification time) is a best guess"
        )
    return text + f"; nothing was moved to {LOST_FOUND}/"


def _readable_runs(data: bytes) -> list[Run]:
    """The runs of a damaged manifest's whole lines: a last line without its
    newline was cut, and a cut run may name the wrong ids (``abc 0-19`` cut
    to ``abc 0-1``), so it is not trusted."""
    if not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
    return _parse_runs(data)[0]


class ManifestScan:
    """The part of a scan that reads a List's order manifest and judges it
    against the item files. A mixin of :class:`~sos.check.scan._Scan`, which
    supplies the attributes declared here."""

    files: _Files
    items: dict[str, str]
    order: Order | None
    manifest: _Manifest
    #: order.txt as read before the listing (bytes and version), or why not
    _manifest_read: tuple[bytes, Version] | Exception | None = None

    if TYPE_CHECKING:

        def where(self, name: str) -> str: ...

    def _manifest_order(self) -> Order | None:
        if self.order is None:
            name = _format.ORDER_NAME
            with contextlib.suppress(OSError, CorruptError):
                self.order = Order.decode(self.files.read(name), self.where(name))
        return self.order

    def _read_manifest_first(self) -> None:
        """Read ``order.txt`` before the item files are listed. An append
        writes its item, then names it: one landing between the two reads
        then shows as an item the manifest does not name yet (an orphan too
        young to move), never as a named item whose file is missing (which
        repair would drop from the manifest)."""
        try:
            self._manifest_read = self.files.read_versioned(_format.ORDER_NAME)
        except (FileNotFoundError, CorruptError) as exc:
            self._manifest_read = exc

    def _manifest(self) -> list[Problem]:
        path = self.where(_format.ORDER_NAME)
        problems: list[Problem] = []
        try:
            # With its version: repair replaces only these bytes (a swap).
            read = self._manifest_read
            if isinstance(read, Exception):
                raise read
            data, version = read or self.files.read_versioned(_format.ORDER_NAME)
        except (FileNotFoundError, CorruptError) as exc:
            unreadable = isinstance(exc, CorruptError)
            self.manifest = _Manifest([], rebuild=True, unreadable=unreadable)
            self.order = Order()
            return [
                Problem(
                    Code.BAD_MANIFEST,
                    path,
                    f"{path}: the list's manifest is missing",
                    action=f"repair rebuilds it from the {len(self.items)} item files, {_GUESS}",
                )
            ]
        rebuild = False
        try:
            runs = Order(decode_runs(data, path)).runs  # repeats included
        except CorruptError as exc:
            conflict = _conflict_runs(data)
            if conflict is not None:
                runs, _ = conflict
                problems.append(
                    Problem(
                        Code.BAD_MANIFEST,
                        path,
                        f"{path}: git conflict markers",
                        line=exc.line,
                        column=1,
                        action="repair keeps the runs of both sides (ours first)",
                    )
                )
            else:  # empty, cut short, not text: rebuilt, as a missing one is
                runs, rebuild = _readable_runs(data), True
                problems.append(self._damaged(path, exc.message, exc.line, exc.column, runs))
        # Arithmetic on runs, never a list of ids: a 40-byte line may name a
        # billion of them (docs/faults.md).
        order = Order.unique(runs)
        missing = _missing_runs(order, self.items, self.files)
        if not rebuild and not data.endswith(b"\n") and (missing or self.unnamed(order)):
            # Every writer ends the manifest with a newline: without one, and
            # with items it does not account for, it was cut short mid-line,
            # and the cut line may name the wrong ids.
            runs, rebuild = _readable_runs(data), True
            line = data.count(b"\n") + 1
            message = f"{path}: line {line} ends without a newline: the manifest was cut short"
            problems.append(self._damaged(path, message, line, None, runs))
            order = Order.unique(runs)
            missing = _missing_runs(order, self.items, self.files)
        seen = _parse_runs(data)[0]
        self.manifest = _Manifest(runs, rebuild=rebuild, version=version, seen=seen)
        self.order = order
        dupes = repeated(runs)
        for run in dupes:
            problems.append(
                Problem(
                    Code.DUPLICATE_ENTRY,
                    path,
                    f"{path}: names {_describe(run)} more than once",
                    key=f"{run.prefix}-{run.first}",
                    action="repair keeps the first",
                )
            )
        for run in missing:
            problems.append(
                Problem(
                    Code.MISSING_ITEM,
                    path,
                    f"{path}: names {_describe(run)}, but no file holds it",
                    key=f"{run.prefix}-{run.first}",
                    action="repair drops the entry",
                )
            )
        if rebuild:  # the items it does not name are its bad-manifest finding's
            return problems
        # In the order they were most likely made: repair moves them to
        # lost+found, and records them there, in this order (for sos adopt).
        grace = self.files.orphan_grace()
        for item_id in guess_order(self.unnamed(order), self.earliest):
            if grace:  # object storage: an append in flight, or one that failed just now
                age = self.files.age(self.items[item_id])
                if age is not None and age < grace:
                    continue
            item_path = self.where(self.items[item_id])
            problems.append(
                Problem(
                    Code.ORPHAN_ITEM,
                    item_path,
                    f"{item_path}: item {item_id} is not in the list's manifest",
                    key=item_id,
                    action=f"repair moves it to {LOST_FOUND}/",
                )
            )
        return problems

    def earliest(self, prefix: str, numbers: list[int]) -> float | None:
        """The earliest modification time of a prefix's item files."""
        times = [self.files.modified(self.items[f"{prefix}-{n}"]) for n in numbers]
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def unnamed(self, order: Order) -> list[str]:
        """The ids of the valid item files ``order`` does not name, sorted."""
        return [i for i in sorted(self.items) if not order.contains(i)]

    def _damaged(
        self, path: str, message: str, line: int | None, column: int | None, runs: list[Run]
    ) -> Problem:
        """The finding for a manifest that is empty, cut short or unreadable:
        repair rebuilds it from the items, never moves them to lost+found."""
        named = Order.unique(runs)
        unnamed = len(self.unnamed(named))
        return Problem(
            Code.BAD_MANIFEST,
            path,
            message,
            line=line,
            column=column,
            action=f"repair rebuilds it from the {len(self.items)} item files: those its "
            f"readable lines name in their order, then the {unnamed} others {_GUESS}",
        )
