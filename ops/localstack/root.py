"""The Asterisk 22 root: Debian unstable with ``asterisk`` installed by debootstrap, cached.

Debian 12 has no ``asterisk`` package; Debian unstable has Asterisk 22. The root is built once
with ``debootstrap --variant=minbase --include=asterisk sid`` from the machine's own Debian
mirror (read from its apt sources at run time, never written anywhere), into a temporary
directory beside the cache location, then renamed into place (atomic) with a marker file.
A second call finds the marker and returns at once.

The location is ``$DIALER_CACHE_DIR`` (the root directory itself), by default
``/var/cache/dialer/asterisk-root``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/var/cache/dialer/asterisk-root")
MARKER = ".dialer-root-ready"
SUITE = "sid"
PACKAGES = ("asterisk",)
APT_SOURCES = Path("/etc/apt/sources.list")
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")


class RootError(RuntimeError):
    """The Asterisk root cannot be built or used."""


@dataclass(frozen=True, slots=True)
class AsteriskRoot:
    """A ready root: ``path`` holds a Debian unstable tree with Asterisk installed."""

    path: Path
    asterisk_version: str

    @property
    def module_dir(self) -> str:
        """The module directory, as seen inside the root."""
        found = sorted(self.path.glob("usr/lib/*/asterisk/modules"))
        if not found:
            raise RootError(f"no Asterisk module directory under {self.path}")
        return "/" + str(found[0].relative_to(self.path))


def root_path() -> Path:
    return Path(os.environ.get("DIALER_CACHE_DIR") or DEFAULT_ROOT)


def debian_mirror(sources_dir: Path = APT_SOURCES_DIR, sources_list: Path = APT_SOURCES) -> str:
    """The first http(s) URI of the main Debian archive in the machine's apt sources.

    deb822 ``URIs:`` fields of ``*.sources`` files first, then ``deb URL`` lines of
    ``sources.list``. Security, updates and backports archives are skipped.
    """
    candidates: list[str] = []
    if sources_dir.is_dir():
        for f in sorted(sources_dir.glob("*.sources")):
            for line in f.read_text(errors="replace").splitlines():
                m = re.match(r"\s*URIs:\s*(.+)", line, re.IGNORECASE)
                if m:
                    candidates.extend(m.group(1).split())
    if sources_list.is_file():
        for line in sources_list.read_text(errors="replace").splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", line)
            if m:
                candidates.append(m.group(1))
    for uri in candidates:
        if re.match(r"https?://", uri) and not re.search(r"security|backports|updates", uri):
            return uri.rstrip("/")
    raise RootError("no http(s) Debian archive found in the apt sources of this machine")


def ready_root(path: Path | None = None) -> AsteriskRoot | None:
    """The cached root at ``path`` if it is complete (marker present), else None."""
    path = path or root_path()
    marker = path / MARKER
    if not marker.is_file():
        return None
    info = json.loads(marker.read_text())
    return AsteriskRoot(path=path, asterisk_version=str(info.get("asterisk_version", "")))


def build_root(path: Path | None = None, *, mirror: str | None = None) -> AsteriskRoot:
    """Build the root if it is not cached yet (idempotent; safe against concurrent callers)."""
    path = path or root_path()
    found = ready_root(path)
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise RootError("building the Asterisk root needs root (debootstrap, chroot)")
    if shutil.which("debootstrap") is None:
        raise RootError("debootstrap not found: apt-get install debootstrap")
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.parent / f".{path.name}.lock"):
        found = ready_root(path)  # another process may have built it meanwhile
        if found is not None:
            return found
        return _build(path, mirror or debian_mirror())


def _build(path: Path, mirror: str) -> AsteriskRoot:
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.build-", dir=path.parent))
    started = time.monotonic()
    log.info("building the Asterisk root in %s (debootstrap %s)", tmp, SUITE)
    cmd = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(tmp),
        mirror,
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-2000:]
            raise RootError(f"debootstrap failed ({done.returncode}): {tail}")
        version = asterisk_version(tmp)
        (tmp / MARKER).write_text(
            json.dumps(
                {"asterisk_version": version, "suite": SUITE, "built_at": time.time()},
                indent=2,
            )
        )
        if path.exists():  # an incomplete leftover without marker
            shutil.rmtree(path)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("Asterisk root ready in %.0f s: %s", time.monotonic() - started, version)
    return AsteriskRoot(path=path, asterisk_version=version)


def asterisk_version(path: Path) -> str:
    done = subprocess.run(
        ["chroot", str(path), "asterisk", "-V"], capture_output=True, text=True, check=False
    )
    version = done.stdout.strip()
    if done.returncode != 0 or not version.startswith("Asterisk 22"):
        raise RootError(f"no Asterisk 22 in {path}: {version or done.stderr.strip()}")
    return version


@contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
