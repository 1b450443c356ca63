"""The difference between two policy documents, as a sorted list of changed paths."""

from __future__ import annotations

from typing import Any

_MISSING = object()


def policy_diff(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """Every leaf that was added, removed or changed: `{"path", "old", "new"}`, by path.

    Mappings are compared key by key; lists and scalars as whole values, since a list of
    categories or bounds is one public fact.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[dict[str, Any]] = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            out.extend(policy_diff(old.get(key, _MISSING), new.get(key, _MISSING), sub))
        return out
    if (old is _MISSING and new is _MISSING) or (old == new and type(old) is type(new)):
        return []
    return [{"path": path or "(document)",
             "old": None if old is _MISSING else old, "new": None if new is _MISSING else new,
             "change": "added" if old is _MISSING else "removed" if new is _MISSING else "changed"}]


def render_diff(changes: list[dict[str, Any]]) -> str:
    """The changes as lines a person reads in a terminal: `~ path: old -> new`."""
    marks = {"added": "+", "removed": "-", "changed": "~"}
    lines = []
    for c in changes:
        if c["change"] == "added":
            lines.append(f"+ {c['path']}: {c['new']!r}")
        elif c["change"] == "removed":
            lines.append(f"- {c['path']}: {c['old']!r}")
        else:
            lines.append(f"{marks['changed']} {c['path']}: {c['old']!r} -> {c['new']!r}")
    return "\n".join(lines) if lines else "(no changes)"
