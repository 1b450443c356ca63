"""Parquet and CSV files: local ones confined to the data root, or object-storage URLs.

A relative path is resolved under the data root and must stay inside it after symlinks are
followed (R-IN-06). `file://` URLs obey the same rule. Object-storage URLs (`s3://`, `gs://`,
`az://`, `abfs://`...) are handed to polars, which reads the credentials from the usual
environment variables (AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_...);
nothing secret is written in a policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gateway.data.connectors import SourceUnavailable

OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss"})


@dataclass(frozen=True)
class Location:
    """Where a file source is: a local path (confined) or an object-store URL."""

    local: Path | None = None
    url: str | None = None

    @property
    def target(self) -> str:
        return str(self.local) if self.local is not None else str(self.url)

    def fingerprint(self) -> tuple[int, int] | None:
        """(mtime, size) of a local file, to skip re-reading one that did not change."""
        if self.local is None:
            return None
        try:
            st = self.local.stat()
        except OSError as exc:
            raise SourceUnavailable(f"file: {type(exc).__name__} on the declared path") from exc
        return st.st_mtime_ns, st.st_size


def locate(path: str, data_root: Path) -> Location:
    """Resolve a policy's `source.path`; a path leaving the data root is refused."""
    parts = urlsplit(path)
    scheme = parts.scheme.lower()
    if scheme in OBJECT_STORE_SCHEMES:
        return Location(url=path)
    if scheme == "file":
        return Location(local=_confined(Path(unquote(parts.path)), data_root))
    if scheme and len(scheme) > 1:  # one letter would be a Windows drive, never a scheme here
        raise SourceUnavailable(f"file: the scheme {scheme!r} is not supported")
    return Location(local=_confined(Path(path), data_root))


def _confined(candidate: Path, data_root: Path) -> Path:
    root = data_root.resolve()
    resolved = (root / candidate).resolve()  # an absolute candidate replaces the root here
    if resolved != root and root not in resolved.parents:
        raise SourceUnavailable("file: the declared path leaves the data root")
    return resolved
