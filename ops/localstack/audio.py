"""Speech for the carrier simulator: espeak-ng -> sox (8 kHz mono mu-law) -> an RTP pcap.

SIPp's ``play_pcap_audio`` replays the UDP payloads of a pcap file, timed by its packet
timestamps. The pcaps written here hold RTP packets of 20 ms (160 bytes of PCMU, payload type
0), so Asterisk receives real speech (for AMD) followed by real silence packets (mu-law 0xFF):
no RTP at all would make AMD answer NOTSURE instead of HUMAN.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 8000
PACKET_MS = 20
PACKET_BYTES = SAMPLE_RATE * PACKET_MS // 1000  # 160 samples, one byte each in mu-law
MULAW_SILENCE = b"\xff"
PT_PCMU = 0
SSRC = 0x5EED1E55

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # LINKTYPE_ETHERNET
_SRC = (bytes([127, 0, 0, 1]), 6000)
_DST = (bytes([127, 0, 0, 1]), 6002)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A spoken phrase followed by ``silence_s`` seconds of silence packets."""

    name: str
    text: str
    silence_s: float
    voice: str = "en-us"
    speed_wpm: int = 160


# The human says one short word, then stays silent: AMD decides HUMAN after 800 ms of silence.
HELLO = Prompt("hello", "Hello?", silence_s=4.0)
# An answering machine's greeting (about 6 s, many words): AMD decides MACHINE.
VOICEMAIL = Prompt(
    "voicemail",
    "Hi, you have reached the voicemail of John Smith. I am not available right now. "
    "Please leave a message after the tone.",
    silence_s=2.0,
)
PROMPTS = (HELLO, VOICEMAIL)


def synthesize_mulaw(prompt: Prompt) -> bytes:
    """Speech as raw 8 kHz mono mu-law bytes (espeak-ng, then sox)."""
    for tool, package in (("espeak-ng", "espeak-ng"), ("sox", "sox")):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: apt-get install {package}")
    with tempfile.TemporaryDirectory(prefix="dialer-audio-") as tmp:
        wav = Path(tmp) / "speech.wav"
        raw = Path(tmp) / "speech.ul"
        subprocess.run(
            [
                "espeak-ng",
                "-v",
                prompt.voice,
                "-s",
                str(prompt.speed_wpm),
                "-w",
                str(wav),
                prompt.text,
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                "sox",
                str(wav),
                "-r",
                str(SAMPLE_RATE),
                "-c",
                "1",
                "-e",
                "mu-law",
                "-t",
                "raw",
                str(raw),
            ],
            check=True,
            capture_output=True,
        )
        return raw.read_bytes()


def rtp_packets(payload: bytes, *, payload_type: int = PT_PCMU) -> Iterator[bytes]:
    """Cut ``payload`` into 20 ms RTP packets (the last one padded with silence)."""
    for seq, offset in enumerate(range(0, len(payload), PACKET_BYTES)):
        chunk = payload[offset : offset + PACKET_BYTES].ljust(PACKET_BYTES, MULAW_SILENCE)
        marker = 0x80 if seq == 0 else 0
        header = struct.pack(
            "!BBHII", 0x80, marker | payload_type, seq & 0xFFFF, seq * PACKET_BYTES, SSRC
        )
        yield header + chunk


def _ipv4_checksum(header: bytes) -> int:
    words: tuple[int, ...] = struct.unpack(f"!{len(header) // 2}H", header)
    total = sum(words)
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(udp_payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", _SRC[1], _DST[1], 8 + len(udp_payload), 0) + udp_payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, *(_SRC[0], _DST[0])
    )
    ip = ip[:10] + struct.pack("!H", _ipv4_checksum(ip)) + ip[12:]
    ethernet = b"\x00" * 12 + b"\x08\x00"
    return ethernet + ip + udp


def write_rtp_pcap(path: Path, payload: bytes) -> int:
    """Write ``payload`` (mu-law) as a pcap of RTP/UDP packets 20 ms apart; returns the count."""
    count = 0
    with open(path, "wb") as fh:
        fh.write(_PCAP_HEADER)
        for i, packet in enumerate(rtp_packets(payload)):
            frame = _frame(packet)
            usec = i * PACKET_MS * 1000
            fh.write(
                struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
            )
            fh.write(frame)
            count += 1
    return count


def prompt_pcap(prompt: Prompt, directory: Path) -> Path:
    """The pcap of ``prompt`` in ``directory``, synthesised once and cached."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{prompt.name}.pcap"
    meta = directory / f"{prompt.name}.json"
    wanted = {
        "text": prompt.text,
        "silence_s": prompt.silence_s,
        "voice": prompt.voice,
        "speed_wpm": prompt.speed_wpm,
    }
    if path.is_file() and meta.is_file() and json.loads(meta.read_text()) == wanted:
        return path
    speech = synthesize_mulaw(prompt)
    silence = MULAW_SILENCE * int(prompt.silence_s * SAMPLE_RATE)
    tmp = path.with_suffix(".tmp")
    write_rtp_pcap(tmp, speech + silence)
    tmp.rename(path)
    meta.write_text(json.dumps(wanted))
    return path


def duration_s(pcap: Path) -> float:
    """Play-out length of a pcap written by :func:`write_rtp_pcap`."""
    size = pcap.stat().st_size - len(_PCAP_HEADER)
    frame = 16 + 14 + 20 + 8 + 12 + PACKET_BYTES
    return size // frame * PACKET_MS / 1000
