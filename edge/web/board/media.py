"""Signage media kept on the appliance so playlists play offline: local files and a cache of remote playlist URLs."""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import threading
from pathlib import Path

import httpx

log = logging.getLogger("qms.board")
MAX_MEDIA_BYTES = 200 * 1024 * 1024  # one video of a promotional loop; larger files belong in the local media dir


class MediaCache:
    """`<data-dir>/board-media/` serves local files; `cache/` keeps a copy of each remote playlist item."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache = root / "cache"
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def local(self, name: str) -> Path | None:
        """A file under the media dir (never outside it), or None."""
        try:
            path = (self.root / name).resolve()
            root = self.root.resolve()
        except (OSError, ValueError):
            return None
        if root not in path.parents or not path.is_file() or self.cache.resolve() in path.parents:
            return None
        return path

    def remote(self, src: str) -> tuple[Path, str] | None:
        """The cached copy of a remote playlist URL, fetched on first use; None when neither cached nor reachable."""
        digest = hashlib.sha256(src.encode()).hexdigest()[:32]
        path = self.cache / digest
        media_type = mimetypes.guess_type(src.split("?", 1)[0])[0] or "application/octet-stream"
        if path.is_file():
            return path, media_type
        with self._guard:
            lock = self._locks.setdefault(digest, threading.Lock())
        with lock:
            if path.is_file():
                return path, media_type
            self.cache.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part")
            try:
                size = 0
                with httpx.stream("GET", src, timeout=20, follow_redirects=True) as response:
                    response.raise_for_status()
                    with partial.open("wb") as out:
                        for chunk in response.iter_bytes():
                            size += len(chunk)
                            _check_size(size)
                            out.write(chunk)
                partial.rename(path)
            except (httpx.HTTPError, OSError, ValueError) as exc:
                partial.unlink(missing_ok=True)
                log.warning("signage media %s not cached: %s", src, exc)
                return None
        return path, media_type


def _check_size(size: int) -> None:
    """Refuse a download that grew past the limit."""
    if size > MAX_MEDIA_BYTES:
        raise ValueError(f"larger than {MAX_MEDIA_BYTES} bytes")
