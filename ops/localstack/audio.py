"""Speech for the carrier simulator: espeak-ng -> sox (8 kHz mono mu-law) -> an RTP pcap.

SIPp's ``play_pcap_audio`` replays the UDP payloads of a pcap file, timed by its packet
timestamps. The pcaps written here hold RTP packets of 20 ms (160 bytes of PCMU, payload type
0), so Asterisk receives real speech (for AMD) followed by real silence packets (mu-law 0xFF):
no RTP at all would make AMD answer NOTSURE instead of HUMAN.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
import wave
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
    """A spoken phrase followed by ``silence_s`` seconds of silence packets (after a
    ``beep_s`` seconds 1 kHz beep when given)."""

    name: str
    text: str
    silence_s: float
    voice: str = "en-us"
    speed_wpm: int = 160
    beep_s: float = 0.0


# The human says one short word, then stays silent: AMD decides HUMAN after 800 ms of silence.
HELLO = Prompt("hello", "Hello?", silence_s=4.0)
# An answering machine's greeting (about 6 s, many words): AMD decides MACHINE.
VOICEMAIL = Prompt(
    "voicemail",
    "Hi, you have reached the voicemail of John Smith. I am not available right now. "
    "Please leave a message after the tone.",
    silence_s=2.0,
)
# An answering machine that records after its beep: the same greeting, a 0.5 s beep, then 20 s
# of silence packets (a machine keeps sending RTP while it records; FreeSWITCH paces a playback
# on the callee's RTP: without any, the voicemail drop's message does not play).
VOICEMAIL_BEEP = Prompt(
    "voicemail-beep", VOICEMAIL.text, silence_s=20.0, voice=VOICEMAIL.voice, beep_s=0.5
)
PROMPTS = (HELLO, VOICEMAIL, VOICEMAIL_BEEP)
# The voicemail drop's message in the tests (DIALER_VM_MESSAGE=dialer-test/vm-message): a sound
# file of the switches, not a pcap of the simulator.
VM_MESSAGE = Prompt(
    "vm-message", "Hello, this is a message from the dialer. Please call us back.", silence_s=0.0
)
VM_MESSAGE_SOUND = "dialer-test/vm-message"


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


def speech_wav(prompt: Prompt, path: Path) -> float:
    """``prompt`` as an 8 kHz mono 16-bit PCM .wav (what both switches play: Asterisk's
    format_wav, FreeSWITCH's mod_sndfile), written atomically; returns its length in seconds."""
    for tool, package in (("espeak-ng", "espeak-ng"), ("sox", "sox")):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: apt-get install {package}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dialer-audio-") as tmp:
        raw = Path(tmp) / "speech.wav"
        out = Path(tmp) / "out.wav"
        text = prompt.text
        subprocess.run(
            ["espeak-ng", "-v", prompt.voice, "-s", str(prompt.speed_wpm), "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                "sox",
                str(raw),
                "-r",
                str(SAMPLE_RATE),
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
        tmp_target = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        shutil.copyfile(out, tmp_target)
        tmp_target.replace(path)  # atomic: several stacks may install the same sound at once
    with wave.open(str(path)) as w:
        frames: int = w.getnframes()
        rate: int = w.getframerate()
    return frames / rate


def install_sound(prompt: Prompt, name: str, sounds_dirs: list[Path]) -> float:
    """``prompt`` as ``<dir>/<name>.wav`` in each sounds directory (Asterisk: the root's
    ``/usr/share/asterisk/sounds``; FreeSWITCH: the instance's ``sounds``); its length in s."""
    length = 0.0
    for directory in sounds_dirs:
        length = speech_wav(prompt, directory / f"{name}.wav")
    return length


def beep_mulaw(seconds: float, hz: int = 1000) -> bytes:
    """A sine beep as raw 8 kHz mono mu-law bytes (sox's synth), like an answering machine's."""
    argv = ["sox", "-n", "-r", str(SAMPLE_RATE), "-c", "1", "-e", "mu-law", "-t", "raw", "-"]
    argv += ["synth", f"{seconds:g}", "sine", str(hz), "vol", "0.5"]
    return subprocess.run(argv, check=True, capture_output=True).stdout


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
    if prompt.beep_s:
        wanted["beep_s"] = prompt.beep_s  # only then: the other prompts' caches stay valid
    if path.is_file() and meta.is_file() and json.loads(meta.read_text()) == wanted:
        return path
    speech = synthesize_mulaw(prompt)
    if prompt.beep_s:
        speech += beep_mulaw(prompt.beep_s)
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
