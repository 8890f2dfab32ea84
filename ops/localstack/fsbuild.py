"""FreeSWITCH 1.10.12 (+ sofia-sip, spandsp) built from source archives, cached.

FreeSWITCH is not packaged for Debian 12, so it is built from a folder of upstream source
archives (``$DIALER_FREESWITCH_SOURCES``, by default ``../shared/freeswitch`` beside the
checkout) whose sha256 sums must match ``ARCHIVES`` (pbx-config/freeswitch/README.md says where
they come from). The prefix is compiled into the binaries, so the build goes straight into its
final place, ``<cache>/freeswitch-<key>`` (``$DIALER_FREESWITCH_CACHE``, by default
``/var/cache/dialer``), where the key hashes everything that shapes the result: the archives'
sums, the module list, the configure flags. A marker file is written last; a lock keeps two
builds from running at once; a second call finds the marker and returns at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ops.localstack.root import locked

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SOURCES = REPO.parent / "shared" / "freeswitch"
DEFAULT_CACHE = Path("/var/cache/dialer")
MARKER = ".dialer-freeswitch-ready"
VERSION = "1.10.12"

# archive -> (folder it unpacks into, sha256). Upstream: pbx-config/freeswitch/README.md.
ARCHIVES: dict[str, tuple[str, str]] = {
    "sofia-sip-v1.13.17.tar.xz": (
        "sofia-sip",
        "7f41325bb20ce409b4b87c617991b5d3da93838c84da78dab76cb586650bfba9",
    ),
    "spandsp-0c7bceb.tar.xz": (
        "spandsp",
        "124951d8552e013f7930a15a344db555d3134dc330a2c2a8e6948bdf1e3d9987",
    ),
    "freeswitch-v1.10.12.tar.xz": (
        "freeswitch",
        "beeb3bc3c8443685639d324fe57128321eb232a19412de3d641fc0901896340c",
    ),
}

# Only what the dialer uses (a module not built cannot be loaded by a config by mistake).
MODULES: dict[str, str] = {
    "applications/mod_commands": "ESL API commands: status, originate, uuid_kill, show channels, "
    "sofia status's host; strepoch for the callback time",
    "applications/mod_dptools": "dialplan applications: park, set, transfer, sched_hangup, "
    "detect_audio, detect_silence (AMD by the greeting's length), playback, "
    "play_and_get_digits, echo, hangup",
    "applications/mod_avmd": "voicemail beep detection; built but not loaded "
    "(freeswitch.NOT_LOADED): dialer.xml needs no beep",
    "applications/mod_expr": "${expr(...)}: dialer_callback_at = now + 3600 and the talk limit's "
    "extra second in dialer.xml (plain C, no library; a few seconds of compile)",
    "dialplans/mod_dialplan_xml": "the XML dialplan (context dialer-outbound)",
    "endpoints/mod_sofia": "SIP toward the carrier (gateways named after trunks)",
    "event_handlers/mod_event_socket": "ESL, the dialer's control connection",
    "formats/mod_sndfile": "playback of .wav files (DIALER_VM_MESSAGE)",
    "formats/mod_tone_stream": "silence_stream:// and tone_stream:// (play_and_get_digits prompts)",
    "loggers/mod_console": "log to stdout (the stack's log file)",
    "loggers/mod_logfile": "freeswitch.log in the instance's log dir",
}

CONFIGURE_FLAGS: tuple[str, ...] = (
    "--disable-libvpx",
    "--disable-libyuv",
    "--disable-core-odbc-support",
    "--without-python",
    "--without-python3",
)
# Bump when the recipe below changes in a way the other inputs do not show.
RECIPE = 1


class FreeSwitchBuildError(RuntimeError):
    """FreeSWITCH cannot be built or found."""


@dataclass(frozen=True, slots=True)
class FreeSwitchBuild:
    """A finished build: ``prefix`` holds bin/freeswitch, lib/, mod/."""

    prefix: Path
    version: str

    @property
    def binary(self) -> Path:
        return self.prefix / "bin" / "freeswitch"

    @property
    def mod_dir(self) -> Path:
        return self.prefix / "lib" / "freeswitch" / "mod"


def sources_dir() -> Path:
    return Path(os.environ.get("DIALER_FREESWITCH_SOURCES") or DEFAULT_SOURCES)


def modules_conf() -> str:
    return "".join(f"{m}\n" for m in MODULES)


def cache_key() -> str:
    """A hash of every input: the archives' sums, modules.conf, configure flags, recipe."""
    inputs = {
        "archives": {name: sha for name, (_, sha) in sorted(ARCHIVES.items())},
        "modules": modules_conf(),
        "flags": list(CONFIGURE_FLAGS),
        "recipe": RECIPE,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def prefix_path() -> Path:
    base = Path(os.environ.get("DIALER_FREESWITCH_CACHE") or DEFAULT_CACHE)
    return base / f"freeswitch-{cache_key()}"


def ready_build(prefix: Path | None = None) -> FreeSwitchBuild | None:
    """The cached build if it is complete (marker present), else None."""
    prefix = prefix or prefix_path()
    marker = prefix / MARKER
    if not marker.is_file():
        return None
    info = json.loads(marker.read_text())
    return FreeSwitchBuild(prefix=prefix, version=str(info.get("version", "")))


def verify_sources(folder: Path) -> dict[str, Path]:
    """Each archive of ``ARCHIVES`` in ``folder`` with its sha256 checked; raise on any mismatch."""
    found: dict[str, Path] = {}
    problems: list[str] = []
    for name, (_, expected) in ARCHIVES.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing from {folder}")
            continue
        got = _sha256(path)
        if got != expected:
            problems.append(f"{name}: sha256 {got}, expected {expected}")
        found[name] = path
    if problems:
        raise FreeSwitchBuildError("FreeSWITCH sources rejected: " + "; ".join(problems))
    return found


def build(prefix: Path | None = None, sources: Path | None = None) -> FreeSwitchBuild:
    """Build FreeSWITCH if it is not cached yet (idempotent; safe against concurrent callers)."""
    prefix = prefix or prefix_path()
    found = ready_build(prefix)
    if found is not None:
        return found
    archives = verify_sources(sources or sources_dir())
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with locked(prefix.parent / f".{prefix.name}.lock"):
        found = ready_build(prefix)  # another process may have built it meanwhile
        if found is not None:
            return found
        return _build(prefix, archives)


def _build(prefix: Path, archives: dict[str, Path]) -> FreeSwitchBuild:
    if prefix.exists():  # an incomplete leftover without marker
        shutil.rmtree(prefix)
    work = Path(tempfile.mkdtemp(prefix=f".{prefix.name}.build-", dir=prefix.parent))
    log_path = prefix.parent / f"{prefix.name}.build.log"
    started = time.monotonic()
    log.info("building FreeSWITCH into %s (log: %s)", prefix, log_path)
    jobs = str(os.cpu_count() or 2)
    env = dict(os.environ, PKG_CONFIG_PATH=f"{prefix}/lib/pkgconfig")
    try:
        with open(log_path, "w") as out:
            for name in ARCHIVES:
                with tarfile.open(archives[name]) as tar:
                    tar.extractall(work, filter="tar")
            steps: list[tuple[str, Sequence[str]]] = []
            for lib in ("sofia-sip", "spandsp"):
                extra = ["--without-doxygen"] if lib == "sofia-sip" else []
                steps += [
                    (lib, ["./bootstrap.sh"]),
                    (lib, ["./configure", f"--prefix={prefix}", "--disable-static", *extra]),
                    (lib, ["make", f"-j{jobs}"]),
                    (lib, ["make", "install"]),
                ]
            (work / "freeswitch" / "modules.conf").write_text(modules_conf())
            steps += [
                ("freeswitch", ["./bootstrap.sh", "-j"]),
                (
                    "freeswitch",
                    [
                        "./configure",
                        f"--prefix={prefix}",
                        *CONFIGURE_FLAGS,
                        f"LDFLAGS=-Wl,-rpath,{prefix}/lib",
                    ],
                ),
                ("freeswitch", ["make", f"-j{jobs}"]),
                ("freeswitch", ["make", "install"]),
            ]
            for folder, cmd in steps:
                _run(cmd, work / folder, env, out, log_path)
        version = freeswitch_version(prefix)
        (prefix / MARKER).write_text(
            json.dumps(
                {
                    "version": version,
                    "key": cache_key(),
                    "modules": list(MODULES),
                    "flags": list(CONFIGURE_FLAGS),
                    "seconds": round(time.monotonic() - started),
                    "built_at": time.time(),
                },
                indent=2,
            )
        )
    except BaseException:
        shutil.rmtree(prefix, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("FreeSWITCH ready in %.0f s: %s", time.monotonic() - started, version)
    return FreeSwitchBuild(prefix=prefix, version=version)


def _run(cmd: Sequence[str], cwd: Path, env: dict[str, str], out: IO[str], log_path: Path) -> None:
    t0 = time.monotonic()
    out.write(f"\n### {cwd.name}: {' '.join(cmd)}\n")
    out.flush()
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    out.write(f"### {cwd.name}: {cmd[0]} exit {done.returncode} in {time.monotonic() - t0:.0f} s\n")
    out.flush()
    if done.returncode != 0:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise FreeSwitchBuildError(
            f"{cwd.name}: {' '.join(cmd)} failed ({done.returncode}); log {log_path}:\n{tail}"
        )


def freeswitch_version(prefix: Path) -> str:
    done = subprocess.run(
        [str(prefix / "bin" / "freeswitch"), "-version"], capture_output=True, text=True
    )
    version = done.stdout.strip()
    if done.returncode != 0 or VERSION not in version:
        raise FreeSwitchBuildError(f"no FreeSWITCH 1.10.12 in {prefix}: {version or done.stderr}")
    return version


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
