"""``uplr data check``: validate a dataset root against its list before spending hours training on it.

Every listed frame is checked for missing files, image/label size mismatch (from headers), and with
``full=True`` its image and label are decoded (truncated or corrupt files) and the label values are
checked against the dataset's encoding. Each problem names the file and how to fix it.

Exit status (:attr:`CheckReport.exit_status`): 0 when every listed frame is usable; 1 when there is a
problem (with ``--strict``, a missing or size-mismatched GTA5 frame is one); 3 when the only unusable
frames are missing or size-mismatched GTA5 frames that training skips with a warning (the official
release has 25) - so a script never mistakes a copy with skipped frames for a complete one.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from uplr.data.datasets import GTA5, GTA5_KNOWN_UNUSABLE, SegDataset, build_dataset
from uplr.data.files import DataFileError, load_rgb, probe_frame

FIXES = {
    "missing_image": "the file is missing: re-download/re-extract the dataset into the root (see the layout)",
    "missing_label": "the file is missing: re-download/re-extract the dataset into the root (see the layout)",
    "unreadable_image": "the file is corrupt or truncated: re-download/re-extract it",
    "unreadable_label": "the file is corrupt or truncated: re-download/re-extract it",
    "size_mismatch": "image and label sizes differ: re-extract both files from the official archive",
    "bad_label_format": "not a label file in this dataset's format (wrong or converted file): re-download it",
    "bad_label_values": "label values outside the dataset's encoding (corrupt or wrong file): re-download it",
    "incomplete": "more GTA5 frames are unusable than the known ones: complete the download (all 10 parts)",
}


@dataclass(frozen=True)
class Problem:
    kind: str
    name: str  # the list entry
    path: Path | None
    detail: str

    @property
    def fix(self) -> str:
        return FIXES.get(self.kind, "re-download/re-extract the file")


@dataclass
class CheckReport:
    """Outcome of :func:`check_dataset`; ``ok`` is False when there is any problem."""

    dataset: str
    root: Path
    split: str
    list_path: Path
    listed: int
    full: bool
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)  # GTA5's known-unusable frames (not strict)
    layout: str = ""

    @property
    def ok(self) -> bool:
        """No problem (frames that training skips, GTA5 without ``strict``, are not problems)."""
        return not self.problems

    @property
    def exit_status(self) -> int:
        """0: every listed frame usable; 1: problems; 3: usable, but some frames are skipped."""
        return 1 if self.problems else 3 if self.skipped else 0

    @property
    def n_ok(self) -> int:
        bad = {p.name for p in self.problems if p.kind != "incomplete"} | {p.name for p in self.skipped}
        return self.listed - len(bad)

    @property
    def by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(p.kind for p in self.problems).items()))

    def format(self, limit: int = 50) -> str:
        """Human-readable summary, then at most ``limit`` problems, each with its file and fix."""
        mode = "full decode" if self.full else "headers only"
        lines = [
            f"{self.dataset} at {self.root} (list {self.list_path}, {mode}): {self.listed} listed, "
            f"{self.n_ok} ok, {len(self.skipped)} skipped, {len(self.problems)} problems"
        ]
        if self.skipped:
            names = ", ".join(p.name for p in self.skipped[:10])
            lines.append(
                f"skipped {len(self.skipped)} known-unusable GTA5 frames (the official release has "
                f"{GTA5_KNOWN_UNUSABLE}; --strict makes them errors): {names}"
                + (" ..." if len(self.skipped) > 10 else "")
            )
        if self.problems:
            lines.append("problems by kind: " + ", ".join(f"{k}: {n}" for k, n in self.by_kind.items()))
            for p in self.problems[:limit]:
                lines.append(f"- [{p.kind}] {p.name}: {p.detail}\n  fix: {p.fix}")
            if len(self.problems) > limit:
                lines.append(f"... and {len(self.problems) - limit} more")
            if any(p.kind.startswith("missing_") for p in self.problems) and self.layout:
                lines.append(f"expected layout:\n{self.layout}")
        elif self.skipped:
            lines.append(f"OK with {len(self.skipped)} of {self.listed} frames skipped (exit status 3)")
        else:
            lines.append("OK")
        return "\n".join(lines)


def _decode(ds: SegDataset, i: int) -> DataFileError | None:
    """Decode frame ``i`` fully; return its first problem."""
    try:
        probe = probe_frame(ds.listed[i])
        if probe is not None:
            return probe
        load_rgb(ds.listed[i].image)
        ds.read_label(i)  # decodes and checks the values (ds.frames is ds.listed: built with verify=False)
    except DataFileError as e:
        return e
    return None


def check_dataset(
    name: str,
    root: str | Path,
    split: str,
    city: str = "",
    strict: bool = False,
    full: bool = True,
    workers: int | None = None,
) -> CheckReport:
    """Validate ``root`` against the list ``split`` of dataset ``name`` (see :func:`build_dataset`).

    Raises UplrError for a missing root, unknown dataset/split or unreadable list; every per-file
    problem goes into the report instead.
    """
    ds = build_dataset(name, root, split, city=city, strict=strict, verify=False)
    n_threads = workers or min(8, os.cpu_count() or 1)
    check = _decode if full else (lambda d, i: probe_frame(d.listed[i]))
    with ThreadPoolExecutor(n_threads) as pool:
        results = list(
            tqdm(
                pool.map(lambda i: check(ds, i), range(len(ds.listed))),
                total=len(ds.listed),
                desc=f"check {ds.key}",
                unit="frame",
            )
        )
    report = CheckReport(ds.key, ds.root, ds.split, ds.list_path, len(ds.listed), full, layout=ds.layout)
    for frame, err in zip(ds.listed, results, strict=True):
        if err is None:
            continue
        problem = Problem(err.kind, frame.name, err.path, str(err))
        known = err.kind.startswith("missing_") or err.kind == "size_mismatch"
        if isinstance(ds, GTA5) and not strict and known:
            report.skipped.append(problem)
        else:
            report.problems.append(problem)
    if len(report.skipped) > GTA5_KNOWN_UNUSABLE:
        report.problems.append(
            Problem(
                "incomplete",
                "(whole list)",
                ds.root,
                f"{len(report.skipped)} frames are missing or mismatched but the official GTA5 release "
                f"has only "
                f"{GTA5_KNOWN_UNUSABLE} unusable frames",
            )
        )
    return report
