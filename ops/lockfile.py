"""The fingerprint that ties requirements.lock to pyproject.toml's dependency lists.

    python -m ops.lockfile fingerprint    # of pyproject.toml as it is now
    python -m ops.lockfile extra-inputs   # what the lock holds beyond the project's dependencies
    python -m ops.lockfile runtime        # the lock's entries a deployment needs (no dev extra)

scripts/lock writes the fingerprint into the lock's header; tests/unit/test_lock.py fails when
it no longer matches pyproject.toml (a range was edited without re-locking). It is computed from
the parsed lists, so comments, layout and order do not count. Standard library only: scripts/lock
runs it before any virtualenv exists.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"
REFRESH_COMMAND = "scripts/lock"
HEADER_KEY = "# pyproject-fingerprint: "
# pip is locked too: the virtualenv's own pip (whatever the Python shipped) installs the lock,
# pip included, and then installs the project with the locked one.
INSTALLER = ["pip"]


def read_pyproject(path: Path = PYPROJECT) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


def locked_lists(pyproject: dict[str, Any]) -> dict[str, list[str]]:
    """Every pyproject list the lock is compiled from, by name."""
    project = pyproject["project"]
    return {
        "build-system.requires": list(pyproject["build-system"]["requires"]),
        "project.dependencies": list(project.get("dependencies", [])),
        "project.optional-dependencies.dev": list(project["optional-dependencies"]["dev"]),
        "project.requires-python": [project.get("requires-python", "")],
    }


def fingerprint(pyproject: dict[str, Any]) -> str:
    """sha256 of the lists, each requirement without whitespace, each list sorted."""
    canonical = {
        name: sorted("".join(req.split()) for req in reqs)
        for name, reqs in locked_lists(pyproject).items()
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def recorded_fingerprint(lock_text: str) -> str | None:
    for line in lock_text.splitlines():
        if line.startswith(HEADER_KEY):
            return line.removeprefix(HEADER_KEY).strip()
    return None


def extra_inputs(pyproject: dict[str, Any]) -> list[str]:
    """The build requirements (the project installs with --no-build-isolation) and pip."""
    return [*pyproject["build-system"]["requires"], *INSTALLER]


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_VIA_PROJECT = re.compile(r"^\S+ \(pyproject\.toml\)$")


def _canonical(name: str) -> str:
    """PEP 503's normalised name (packaging.utils.canonicalize_name, standard library only)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement.strip())
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return _canonical(match.group())


def lock_blocks(lock_text: str) -> list[tuple[str, list[str], str]]:
    """Each entry of the lock: its canonical name, the packages it is there for (uv's
    ``# via`` lines: a package name, ``dialer (pyproject.toml)`` or ``-r -`` for the extra
    inputs) and its text as written (requirement, hashes and comments)."""
    blocks: list[tuple[str, list[str], str]] = []
    current: list[str] = []

    def close() -> None:
        if not current:
            return
        via: list[str] = []
        for line in current[1:]:
            comment = line.strip().removeprefix("#").strip()
            if line.lstrip().startswith("#") and comment and comment != "via":
                via.append(comment.removeprefix("via ").strip())
        blocks.append((_requirement_name(current[0]), via, "\n".join(current)))
        current.clear()

    for line in lock_text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            close()
            current.append(line)
        elif current and line.startswith((" ", "\t")):
            current.append(line)
        elif current and not line.strip():
            close()
    close()
    return blocks


def runtime_subset(pyproject: dict[str, Any], lock_text: str) -> str:
    """The lock's entries that the project's own ``dependencies`` need, directly or through
    each other, plus the build requirements and pip (the project installs with
    --no-build-isolation): what an image installs with ``pip install --require-hashes
    --no-deps`` before ``pip install --no-deps --no-build-isolation .``. Read from uv's ``#
    via`` annotations, so the dev extra's packages (pytest, ruff, mypy...) are left out."""
    blocks = lock_blocks(lock_text)
    for_whom: dict[str, set[str]] = {}  # package -> the locked packages it is there for
    for name, via, _ in blocks:
        for parent in via:
            if not _VIA_PROJECT.match(parent) and parent != "-r -":
                for_whom.setdefault(_requirement_name(parent), set()).add(name)
    wanted = {_requirement_name(r) for r in pyproject["project"].get("dependencies", [])}
    wanted |= {_requirement_name(r) for r in extra_inputs(pyproject)}
    missing = wanted - {name for name, _, _ in blocks}
    if missing:
        raise ValueError(f"the lock has no entry for {sorted(missing)}: run {REFRESH_COMMAND}")
    todo = list(wanted)
    while todo:
        for child in for_whom.get(todo.pop(), ()):
            if child not in wanted:
                wanted.add(child)
                todo.append(child)
    kept = [text for name, _, text in blocks if name in wanted]
    return "\n".join(kept) + "\n"


def main(argv: list[str]) -> int:
    if argv == ["fingerprint"]:
        print(fingerprint(read_pyproject()))
        return 0
    if argv == ["extra-inputs"]:
        print("\n".join(extra_inputs(read_pyproject())))
        return 0
    if argv == ["runtime"]:
        sys.stdout.write(runtime_subset(read_pyproject(), LOCK.read_text()))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
