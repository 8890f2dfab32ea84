"""The fingerprint that ties requirements.lock to pyproject.toml's dependency lists.

    python -m ops.lockfile fingerprint    # of pyproject.toml as it is now
    python -m ops.lockfile extra-inputs   # what the lock holds beyond the project's dependencies

scripts/lock writes the fingerprint into the lock's header; tests/unit/test_lock.py fails when
it no longer matches pyproject.toml (a range was edited without re-locking). It is computed from
the parsed lists, so comments, layout and order do not count. Standard library only: scripts/lock
runs it before any virtualenv exists.
"""

from __future__ import annotations

import hashlib
import json
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


def main(argv: list[str]) -> int:
    if argv == ["fingerprint"]:
        print(fingerprint(read_pyproject()))
        return 0
    if argv == ["extra-inputs"]:
        print("\n".join(extra_inputs(read_pyproject())))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
