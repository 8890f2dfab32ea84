"""requirements.lock agrees with pyproject.toml (read from disk, no network).

The lock is what scripts/bootstrap installs; pyproject's ranges are what someone installing the
package as a library gets. Editing a range without running scripts/lock fails here.
"""

from __future__ import annotations

import re

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ops.lockfile import (
    LOCK,
    REFRESH_COMMAND,
    extra_inputs,
    fingerprint,
    read_pyproject,
    recorded_fingerprint,
)

PYPROJECT = read_pyproject()
LOCK_TEXT = LOCK.read_text()
DIRECT = [
    *PYPROJECT["project"]["dependencies"],
    *PYPROJECT["project"]["optional-dependencies"]["dev"],
    *extra_inputs(PYPROJECT),
]

# The universal lock serves every platform and Python pyproject allows: check a spread of them
# (3.11.2 is Debian 12's Python), and this machine.
HERE = {key: str(value) for key, value in default_environment().items()}
ENVIRONMENTS = [
    HERE,
    *(
        {
            **HERE,
            "sys_platform": platform,
            "platform_system": system,
            "os_name": os_name,
            "python_version": full.rsplit(".", 1)[0],
            "python_full_version": full,
        }
        for platform, system, os_name in (
            ("linux", "Linux", "posix"),
            ("darwin", "Darwin", "posix"),
            ("win32", "Windows", "nt"),
        )
        for full in ("3.11.2", "3.12.0", "3.13.0")
    ),
]


def lock_entries(text: str) -> list[tuple[Requirement, list[str]]]:
    """Each ``name==version ; marker`` of a pip requirements file, with its --hash values."""
    entries = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        spec, *hashes = line.split("--hash=")
        entries.append((Requirement(spec.strip()), [h.strip() for h in hashes]))
    return entries


ENTRIES = lock_entries(LOCK_TEXT)


def pin(req: Requirement) -> str:
    (specifier,) = req.specifier
    return specifier.version


def locked_for(name: str, env: dict[str, str]) -> list[Requirement]:
    return [
        req
        for req, _ in ENTRIES
        if canonicalize_name(req.name) == name and (req.marker is None or req.marker.evaluate(env))
    ]


def test_lock_matches_pyproject_fingerprint() -> None:
    assert recorded_fingerprint(LOCK_TEXT) == fingerprint(PYPROJECT), (
        f"pyproject.toml's dependency lists changed since {LOCK.name} was compiled: "
        f"run {REFRESH_COMMAND} and commit both files"
    )


@pytest.mark.parametrize("requirement", DIRECT)
def test_direct_requirement_locked_inside_its_range(requirement: str) -> None:
    req = Requirement(requirement)
    name = canonicalize_name(req.name)
    for env in ENVIRONMENTS:
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        where = f"{env['sys_platform']}, Python {env['python_full_version']}"
        locked = locked_for(name, env)
        assert len(locked) == 1, f"{requirement}: {len(locked)} pins in {LOCK.name} for {where}"
        version = pin(locked[0])
        assert req.specifier.contains(version, prereleases=True), (
            f"{requirement}: {LOCK.name} pins {version} for {where}; run {REFRESH_COMMAND}"
        )


def test_every_entry_is_one_exact_hashed_pin() -> None:
    assert len(ENTRIES) >= len(DIRECT)
    for req, hashes in ENTRIES:
        assert [s.operator for s in req.specifier] == ["=="], req
        assert hashes, f"{req}: no --hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), req


def test_lock_names_no_index_and_no_url() -> None:
    # Options such as --index-url or --find-links would name a host, or a machine's own path.
    assert not [line for line in LOCK_TEXT.splitlines() if line.startswith("-")]
    assert "://" not in LOCK_TEXT


def test_fingerprint_ignores_layout_and_order_but_not_ranges() -> None:
    def with_dependencies(deps: list[str]) -> dict[str, object]:
        return {**PYPROJECT, "project": {**PYPROJECT["project"], "dependencies": deps}}

    deps: list[str] = PYPROJECT["project"]["dependencies"]
    respaced = [req.replace(",", " , ") for req in reversed(deps)]
    assert fingerprint(with_dependencies(respaced)) == fingerprint(PYPROJECT)
    narrowed = [deps[0].replace("<", "<=", 1), *deps[1:]]
    assert fingerprint(with_dependencies(narrowed)) != fingerprint(PYPROJECT)


def test_runtime_subset_is_the_dependencies_closure_without_the_dev_extra() -> None:
    from ops.lockfile import ROOT, lock_blocks, runtime_subset

    subset = runtime_subset(PYPROJECT, LOCK_TEXT)
    names = {name for name, _, _ in lock_blocks(subset)}
    runtime = {
        canonicalize_name(Requirement(r).name)
        for r in [*PYPROJECT["project"]["dependencies"], *extra_inputs(PYPROJECT)]
    }
    assert runtime <= names
    # what only the dev extra needs stays out of an image
    assert not {"pytest", "ruff", "mypy", "hypothesis"} & names
    # redis-py's and uvicorn's own dependencies come along (found through uv's `# via`)
    assert {"h11", "click", "anyio"} <= names
    # every entry keeps its hashes: pip --require-hashes accepts the subset as it is
    for requirement, hashes in lock_entries(subset):
        assert hashes, requirement
    dockerfile = (ROOT / "ops" / "dialer" / "Dockerfile").read_text()
    assert "python -m ops.lockfile runtime" in dockerfile
    assert "--require-hashes --no-deps" in dockerfile


def test_runtime_subset_follows_via_chains_and_refuses_a_missing_dependency() -> None:
    from ops.lockfile import runtime_subset

    lock = (
        "a==1 \\\n    --hash=sha256:aa\n    # via dialer (pyproject.toml)\n"
        "b==1 \\\n    --hash=sha256:bb\n    # via a\n"
        "c==1 \\\n    --hash=sha256:cc\n    # via\n    #   b\n    #   d\n"
        "d==1 \\\n    --hash=sha256:dd\n    # via dialer (pyproject.toml)\n"
        "pip==1 \\\n    --hash=sha256:ee\n    # via -r -\n"
    )
    pyproject = {"project": {"dependencies": ["a>=1"]}, "build-system": {"requires": []}}
    subset = runtime_subset(pyproject, lock)
    assert [line.split("==")[0] for line in subset.splitlines() if "==" in line] == [
        "a",
        "b",
        "c",
        "pip",
    ]
    with pytest.raises(ValueError, match="no entry for"):
        runtime_subset({**pyproject, "project": {"dependencies": ["zz"]}}, lock)
