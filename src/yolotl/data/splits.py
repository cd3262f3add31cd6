"""Checked splits: read the splits of one dataset, check their health and apply the data policy.

:class:`CheckedSplits` is what :class:`~yolotl.DetectionDataModule` ``setup()`` builds its datasets
from, and works without Lightning. It reads the splits a stage needs (role by role: ``train``,
``val``, ``test``), runs :func:`~yolotl.check_dataset`'s checks on them (every image decoded and
hashed once: results kept in an :class:`~yolotl.data.health.store.ImageInfoStore`; identical images
looked for inside and across the splits held; class maps of semantic data decoded once too, and
frames of one sequence looked for on both sides of a split), then applies the policy: ``strict`` raises
DatasetError with the report table on any error or warning; ``fix`` skips unusable images (and
images whose class map is unusable) and the earlier-split copies of leaked images, drops tiny and
duplicate boxes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from yolotl.data import health as _health
from yolotl.data.findings import Finding, FindingLog
from yolotl.data.formats import SplitNotFoundError, read_split
from yolotl.data.health.images import PixelSink, inspect_images
from yolotl.data.health.semantic import MaskInfo, inspect_masks, semantic_masks
from yolotl.data.health.store import ImageInfoStore
from yolotl.data.records import DatasetSplit
from yolotl.errors import DatasetError

__all__ = ["ROLES", "CheckedSplits", "load_checked_splits"]

_LOG = logging.getLogger("yolotl.data")
ROLES = ("train", "val", "test")


class CheckedSplits:
    """The checked, policy-applied splits of the dataset at ``root``, read role by role.

    ``split_names`` maps each role (``train``, ``val``, ``test``) to the split's name in the
    dataset (None: the role has no split). ``store`` keeps decode results across processes (None:
    only in memory); ``pixels`` receives exactly-decoded images (an image cache's ``put``).
    After :meth:`read`, ``splits`` holds the fixed split per role, ``class_names`` the classes,
    :attr:`report` what the checks found and ``masks`` the decoded class maps of semantic records
    (:class:`~yolotl.data.health.semantic.MaskInfo`: size and pixels per value).
    """

    def __init__(
        self,
        format: str,  # noqa: A002 - the user-facing config name
        root: str | Path,
        split_names: Mapping[str, str | None],
        class_names: Sequence[str] | None = None,
        policy: str = "fix",
        options: _health.CheckOptions | None = None,
        store: ImageInfoStore | None = None,
        pixels: PixelSink | None = None,
        image_dir: str | Path | None = None,
        annotation_dir: str | Path | None = None,
    ) -> None:
        self.format = str(format).lower()
        self.root = str(root)
        self.folders = {"image_dir": image_dir, "annotation_dir": annotation_dir}  # VOC only
        self.split_names = {role: split_names.get(role) for role in ROLES}
        self.policy = _health.check_policy(policy)
        self.options = options or _health.CheckOptions()
        self.store = store
        self.pixels = pixels
        self.splits: dict[str, DatasetSplit] = {}
        self.missing: set[str] = set()
        self.class_names: list[str] | None = None
        self.findings: list[Finding] = []
        self.infos: dict[Path, _health.ImageInfo] = {}
        self.masks: dict[Path, MaskInfo] = {}
        self.seconds = 0.0
        self._given = list(class_names) if class_names is not None else None
        self._dataset_checked = False
        self._read_ahead: dict[str, tuple[list[str] | None, DatasetSplit]] = {}

    # ---- reading and checking ------------------------------------------------------------

    def prepare(self, roles: Iterable[str] = ROLES) -> None:
        """Decode (and hash) every image of the ``roles``' splits now, filling the store; nothing
        is checked or applied. A split that does not exist is left to :meth:`read` to report.

        Lightning runs this on one process per node (``prepare_data``) before every process reads
        the splits, so the other processes find the decode results in the store."""
        start = time.perf_counter()
        names = self._given
        for role in roles:
            name = self.split_names.get(role)
            if name is None or role in self.splits or name in self._read_ahead:
                continue
            try:
                split = read_split(self.format, self.root, name, names, **self.folders)
            except SplitNotFoundError:
                continue
            self._read_ahead[name] = (names, split)  # read() reuses it when it asks the same
            names = names or split.class_names
            self._inspect(r.image_path for r in split.records)
            self._inspect_masks(semantic_masks(split.records))
        self.seconds += time.perf_counter() - start

    def read(
        self, roles: Iterable[str], optional: Iterable[str] = ()
    ) -> tuple[list[str], list[Finding]]:
        """Read, check and fix the ``roles`` not read yet; returns the roles read now (a role
        sharing an earlier role's split is not counted) and their new findings, per split.

        A role in ``optional`` whose split does not exist is left out (``missing``). strict: any
        error or warning raises the report's DatasetError. fix: the findings' images and boxes
        leave every split held (a train image identical to a test image read later leaves train
        then). On any DatasetError the roles read in this call are forgotten, so the next call
        reads and checks them again.
        """
        optional = set(optional)
        fresh = [role for role in roles if self._read_role(role, role in optional) is not None]
        if not fresh:
            return [], []
        checked = self._check(fresh)
        new = FindingLog()
        for role in fresh:
            new.merge(self.splits[role].findings)
        fresh_names = {self.splits[role].name for role in fresh}
        new.extend(f for f in checked if f.split not in fresh_names)  # leakage, whole-dataset
        return fresh, new.entries

    def _read_role(self, role: str, optional: bool) -> DatasetSplit | None:
        """Read the split playing ``role`` once; None if it is optional and absent."""
        name = self.split_names[role]
        if role in self.splits or name is None or role in self.missing:
            return None
        twin = next((held for held, split in self.splits.items() if split.name == name), None)
        if twin is not None:  # test_split="val": the split read, checked and fixed already
            if twin == "train":
                _LOG.warning("The %s split is the train split '%s': its scores will not measure how "
                             "the model does on unseen images.", role, name)
            self.splits[role] = self.splits[twin]
            return None
        names = self.class_names or self._given
        ahead = self._read_ahead.pop(name, None)
        if ahead is not None and ahead[0] == names:
            split = ahead[1]
        else:
            try:
                split = read_split(self.format, self.root, name, names, **self.folders)
            except SplitNotFoundError:
                if not optional:
                    raise
                self.missing.add(role)
                return None
        self.class_names = self.class_names or split.class_names
        self.splits[role] = split
        return split

    def _inspect(self, paths: Iterable[Path]) -> None:
        """Decode results of ``paths`` into ``infos``: from the store, else decoded (and stored)."""
        todo = [p for p in dict.fromkeys(paths) if p not in self.infos]
        if not todo:
            return
        if self.store is None:
            self.infos.update(inspect_images(todo, self.options.threads, self.pixels))
            return
        hits, misses = self.store.lookup(todo)
        self.infos.update(hits)
        if misses:
            decoded = inspect_images(list(misses), self.options.threads, self.pixels)
            self.infos.update(decoded)
            self.store.update(decoded, misses)
            self.store.save()

    def _inspect_masks(self, paths: Iterable[Path]) -> None:
        """Decoded class maps of ``paths`` into ``masks``: from the store, else decoded (and stored)."""
        todo = [p for p in dict.fromkeys(paths) if p not in self.masks]
        if not todo:
            return
        if self.store is None:
            self.masks.update(inspect_masks(todo, self.options.threads))
            return
        hits, misses = self.store.lookup(todo, "masks")
        self.masks.update(hits)
        if misses:
            decoded = inspect_masks(list(misses), self.options.threads)
            self.masks.update(decoded)
            self.store.update(decoded, misses, "masks")
            self.store.save()

    def _check(self, fresh: list[str]) -> list[Finding]:
        """Check the splits of the ``fresh`` roles (identical images against every split held) and
        apply the policy; returns the health findings (the readers' own are in the split logs)."""
        start = time.perf_counter()
        held = [role for role in ROLES if role in self.splits]
        splits = {self.splits[role].name: self.splits[role] for role in held}
        names = [self.splits[role].name for role in fresh]
        rank = {self.splits[role].name: i for i, role in enumerate(held)}
        self._inspect(r.image_path for name in names for r in splits[name].records)
        self._inspect_masks(p for name in names for p in semantic_masks(splits[name].records))
        checked = _health.inspect_splits(splits, self.options, self.infos, names, rank, self.masks)
        if not self._dataset_checked:  # files outside every split (VOC JPEGImages), once
            checked += _health.dataset_findings(self.format, self.splits[fresh[0]].root,
                                                **self.folders)
        before = list(self.findings)
        self.findings += _health.reader_findings({n: splits[n] for n in names}) + checked
        self.seconds += time.perf_counter() - start
        try:
            error = _health.strict_error(self.report) if self.policy == "strict" else None
            if error is not None:
                raise error
            fixed_of = {id(split): self._fixed(split, checked) for split in splits.values()}
            fixed = {role: fixed_of[id(self.splits[role])] for role in held}  # twins stay one split
            classes = self._class_findings(fixed, fresh)  # counted on what training will see
            self.findings += classes
            error = _health.strict_error(self.report) if self.policy == "strict" else None
            if error is not None:
                raise error
        except DatasetError:
            unchecked = [self.splits[role] for role in fresh]
            for role in [r for r, split in self.splits.items() if any(split is u for u in unchecked)]:
                del self.splits[role]  # with any twin role (test_split="val") sharing the split
            self.findings = before
            raise
        checked += classes
        for split in fixed_of.values():
            split.findings.extend(f for f in checked if f.split == split.name)
        self.splits.update(fixed)
        self._dataset_checked = True
        for finding in classes:
            level = logging.WARNING if finding.severity == "warning" else logging.INFO
            _LOG.log(level, "%s (%s): %s", finding.kind, finding.split, finding.detail)
        return checked

    def _class_findings(self, fixed: Mapping[str, DatasetSplit], fresh: list[str]) -> list[Finding]:
        """Classes of val/test missing from train, and rare in train (boxes), and classes without
        a pixel in a split (class maps), counted after the fix."""
        if "train" not in fixed:
            return []
        splits = {split.name: split.records for split in fixed.values()}
        names = list(self.class_names or fixed["train"].class_names)
        return _health.class_split_findings(splits, names, fixed["train"].name, self.root,
                                            [fixed[role].name for role in fresh], self.masks)

    def _fixed(self, split: DatasetSplit, findings: list[Finding]) -> DatasetSplit:
        """``split`` with the fix policy applied; DatasetError if no image is left."""
        fixed = _health.apply_fix(split, findings)
        if not fixed.records:
            skipped = [f"{f.kind} {Path(f.file).name}" for f in findings
                       if f.split == split.name and f.action == "skipped image"]
            raise DatasetError(
                f"Split '{split.name}' of {self.root} has no usable image left after "
                f"data.checks.policy=fix skipped {len(skipped)} ({', '.join(skipped[:5])}); repair or "
                f"replace those files (yolotl-check-data lists every finding)."
            )
        return fixed

    # ---- what the checks found -----------------------------------------------------------

    @property
    def report(self) -> _health.HealthReport:
        """What the checks found in the splits read so far; statistics of the data the policy left."""
        held = [self.splits[role] for role in ROLES if role in self.splits]
        names = list(self.class_names or [])
        return _health.HealthReport(
            root=self.root, format=self.format, class_names=names, splits=[s.name for s in held],
            findings=list(self.findings), policy=self.policy, seconds=self.seconds,
            stats={s.name: _health.SplitStats.of(s.records, names, self.masks) for s in held},
            options=dataclasses.asdict(self.options))


def load_checked_splits(
    format: str,  # noqa: A002 - the user-facing config name
    root: str | Path,
    split_names: Mapping[str, str | None],
    class_names: Sequence[str] | None = None,
    policy: str = "fix",
    options: _health.CheckOptions | None = None,
    store: ImageInfoStore | None = None,
    optional: Iterable[str] = ("test",),
    image_dir: str | Path | None = None,
    annotation_dir: str | Path | None = None,
) -> CheckedSplits:
    """Read, check and fix every configured split at once (roles in ``optional`` may be absent)."""
    checked = CheckedSplits(format, root, split_names, class_names, policy, options, store,
                            image_dir=image_dir, annotation_dir=annotation_dir)
    checked.read(ROLES, optional)
    return checked
