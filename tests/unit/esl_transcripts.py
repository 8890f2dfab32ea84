"""Loads the recorded ESL transcripts of tests/data/esl (see each file's header for its source)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "esl"
CUT = b"#---8<---\n"


def transcript(name: str) -> bytes:
    """The wire bytes of ``tests/data/esl/<name>``: everything after the ``#---8<---`` line."""
    raw = (DATA / name).read_bytes()
    header, sep, wire = raw.partition(CUT)
    assert sep, f"{name} has no '#---8<---' line"
    assert all(line.startswith(b"#") for line in header.splitlines()), name
    return wire


def all_transcripts() -> list[str]:
    return sorted(path.name for path in DATA.glob("*.txt"))
