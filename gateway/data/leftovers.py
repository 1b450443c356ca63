"""Files a killed load leaves behind, found at the next start.

A load writes, in order: the body or download (`_snapshots/.incoming/`), the canonical file
(`_snapshots/<dataset>/.<uuid>.tmp`, renamed to `<sha256>.parquet`), the sandbox's prepared
copy (`sandbox-cache/.prepare-*.arrow`, renamed to `<dataset>-<id>-<layout>.arrow`), and last
the store's pointer. A kill -9 anywhere in between leaves the pointer where it was (the old
snapshot serves) and some of these files behind: temporaries, and finished files that no kept
snapshot names. They are found here and removed by the caller (service/supply_cleanup.py).

Replicas share the data folder: a file another replica may still be writing is only taken once
it is older than `min_age` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from gateway.data.snapshots import INCOMING_DIR


def leftovers(snapshots_root: Path, cache_dir: Path, kept: dict[str, set[str]], prepared: Iterable[str],
              min_age: float) -> list[Path]:
    """Files under the snapshot folder and the sandbox cache that nothing kept names.

    `kept`: dataset -> snapshot ids the store keeps (current and recent history); `prepared`:
    names of the prepared files those snapshots have under the policies in force.
    """
    cutoff = time.time() - min_age
    found: list[Path] = []
    incoming = snapshots_root / INCOMING_DIR
    if incoming.is_dir():
        found += [p for p in incoming.iterdir() if p.is_file()]
    if snapshots_root.is_dir():
        for folder in (d for d in snapshots_root.iterdir() if d.is_dir() and d.name != INCOMING_DIR):
            ids = kept.get(folder.name)
            for file in folder.iterdir():
                temporary = file.name.startswith(".") and file.name.endswith(".tmp")
                unnamed = file.suffix == ".parquet" and ids is not None and file.stem not in ids
                if file.is_file() and (temporary or unnamed):
                    found.append(file)
    if cache_dir.is_dir():
        wanted = set(prepared)
        found += [p for p in cache_dir.iterdir() if p.is_file() and p.name not in wanted
                  and (p.name.startswith(".prepare-") or p.suffix == ".arrow")]
    return sorted(p for p in found if _mtime(p) < cutoff)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")  # gone meanwhile: nothing to remove


def remove(paths: Iterable[Path]) -> list[Path]:
    """Delete each file; the ones actually removed."""
    removed = []
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed
