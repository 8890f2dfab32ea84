"""The pure parts of the local stack: number plan, templates, configs, pcaps, apt sources."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from ops.localstack import audio
from ops.localstack.asterisk import CONFIG_SOURCE, AsteriskLayout, render_config
from ops.localstack.numberplan import PLAN, Behaviour, entry, number, parse
from ops.localstack.root import debian_mirror
from ops.localstack.sipp import SCENARIO_TEMPLATE
from ops.localstack.templates import TemplateError, render

B = Behaviour

# -- number plan ------------------------------------------------------------------------------


def test_numbers_follow_the_plan() -> None:
    assert number(B.HOLD, 7, hold_s=3) == "+12015030007"
    assert number(B.WAIT_FOR_BYE, 0) == "+12015000000"
    assert number(B.BUSY, 9999) == "+12015869999"
    assert number(B.RING_NO_ANSWER, 42) == "+12015700042"
    assert number(B.BUSY, 5, hold_s=3) == number(B.BUSY, 5)  # hold_s only matters for HOLD


def test_every_behaviour_has_one_entry_and_round_trips() -> None:
    assert [e.behaviour for e in PLAN] == list(Behaviour)
    codes = [e.code for e in PLAN]
    assert len(set(codes)) == len(codes)
    for e in PLAN:
        hold = 5 if e.behaviour is B.HOLD else None
        parsed = parse(number(e.behaviour, 123, hold_s=hold))
        assert parsed is not None
        assert (parsed.behaviour, parsed.serial, parsed.hold_s) == (e.behaviour, 123, hold)


@pytest.mark.parametrize(
    ("behaviour", "serial", "hold_s"),
    [(B.HOLD, 1, None), (B.HOLD, 1, 0), (B.HOLD, 1, 60), (B.BUSY, 10_000, None), (B.BUSY, -1, 1)],
)
def test_bad_number_requests_are_refused(
    behaviour: Behaviour, serial: int, hold_s: int | None
) -> None:
    with pytest.raises(ValueError, match=r"serial|hold_s|HOLD"):
        number(behaviour, serial, hold_s=hold_s)


def test_numbers_outside_the_plan() -> None:
    assert parse("+4930123456") is None
    outside = parse("+12015990001")
    assert outside is not None
    assert outside.behaviour is None


def test_scenario_template_knows_every_code_of_the_plan() -> None:
    xml = SCENARIO_TEMPLATE.read_text()
    tested = set(re.findall(r'compare="equal" value="(\d+)"', xml))
    fixed = {str(int(e.code)) for e in PLAN if e.behaviour is not B.HOLD}
    assert tested == fixed
    assert 'compare="less_than" value="60"' in xml
    for e in PLAN:
        if e.sip_response not in (None, 200):
            assert f"SIP/2.0 {e.sip_response} " in xml, e
    assert entry(B.RING_NO_ANSWER).sip_response is None
    assert "SIP/2.0 487 Request Terminated" in xml


# -- templates and configs --------------------------------------------------------------------


def test_only_stack_placeholders_are_replaced() -> None:
    text = "p=${STACK_PORT} amd=${AMDSTATUS} $[${EPOCH} + 1] $$ $x ${stack_port} [$cseq]"
    assert render(text, {"STACK_PORT": "5", "stack_port": "6"}) == (
        "p=5 amd=${AMDSTATUS} $[${EPOCH} + 1] $$ $x ${stack_port} [$cseq]"
    )


def test_a_placeholder_without_value_is_an_error() -> None:
    with pytest.raises(TemplateError, match="STACK_NOPE"):
        render("a=${STACK_NOPE}", {}, source="x.conf")


def layout(root: Path) -> AsteriskLayout:
    return AsteriskLayout(
        root=root,
        name="unit",
        module_dir="/usr/lib/x86_64-linux-gnu/asterisk/modules",
        ami_port=21010,
        ami_username="dialer",
        ami_secret="s3cret",
        sip_port=21000,
        sipp_port=21001,
        dead_port=21011,
        http_port=21012,
        rtp_start=20000,
        rtp_end=20399,
    )


def test_pbx_config_renders_completely_into_the_instance_dir(tmp_path: Path) -> None:
    conf = render_config(layout(tmp_path))
    assert conf == tmp_path / "etc" / "dialer-unit"
    sources = sorted(p.name for p in CONFIG_SOURCE.glob("*.conf"))
    assert sorted(p.name for p in conf.iterdir()) == sources
    text = {p.name: p.read_text() for p in conf.iterdir()}
    assert "astetcdir => /etc/dialer-unit\n" in text["asterisk.conf"]
    assert "astrundir => /var/lib/dialer-unit/run\n" in text["asterisk.conf"]
    assert "bind = 127.0.0.1:21000\n" in text["pjsip.conf"]
    assert "contact = sip:127.0.0.1:21001\n" in text["pjsip.conf"]
    assert "contact = sip:127.0.0.1:21011\n" in text["pjsip.conf"]
    assert "port = 21010\n" in text["manager.conf"]
    assert "[dialer]\n" in text["manager.conf"]
    assert "rtpstart = 20000\nrtpend = 20399\n" in text["rtp.conf"]
    assert "${AMDSTATUS}" in text["extensions.conf"]
    assert (conf / "manager.conf").stat().st_mode & 0o077 == 0
    assert (tmp_path / "var" / "lib" / "dialer-unit" / "log").is_dir()


def _manager_sections(text: str) -> dict[str, str]:
    parts = re.split(r"(?m)^\[([^\]]+)\]\s*$", text)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _include_filters(section: str) -> tuple[list[str], set[str]]:
    filters = re.findall(r"(?m)^eventfilter(.*)$", section)
    names = {
        m.group(1) for f in filters if (m := re.match(r"\(action\(include\),name\((\w+)\)", f))
    }
    return filters, names


def test_manager_grants_the_least_privileges() -> None:
    manager = (CONFIG_SOURCE / "manager.conf").read_text()
    sections = _manager_sections(manager)
    assert set(sections) == {"general", "${STACK_AMI_USER}", "${STACK_AMI_USER}-watch"}
    # system: read only, filtered to ContactStatus (the trunk breakers' switch view)
    assert re.search(r"(?m)^read = call,user,system$", sections["${STACK_AMI_USER}"])
    # the watching user also reads the dialplan class, filtered to Playback steps below
    assert re.search(r"(?m)^read = call,user,dialplan$", sections["${STACK_AMI_USER}-watch"])
    for user in ("${STACK_AMI_USER}", "${STACK_AMI_USER}-watch"):
        assert re.search(r"(?m)^write = originate,call,reporting$", sections[user])
    # the adapter's event filters live here (Filter actions would need "system")
    from dialer.pbx.asterisk.contacts import CONTACT_EVENT
    from dialer.pbx.asterisk.correlate import FOLLOWED_EVENTS

    filters, names = _include_filters(sections["${STACK_AMI_USER}"])
    assert set(FOLLOWED_EVENTS) == {"OriginateResponse", "Hangup", "UserEvent", "Newchannel"}
    assert names == {*FOLLOWED_EVENTS, CONTACT_EVENT}
    assert len(filters) == len(names)  # one include filter each, nothing else
    # only the dialer's own channels' creation (the CPS margin's stamps), not every channel's
    newchannel = "(action(include),name(Newchannel),header(Uniqueid),method(starts_with)) = dlr-"
    assert newchannel in filters
    # the watching user also sees channels appear and answer (Newstate only when Up)
    filters, names = _include_filters(sections["${STACK_AMI_USER}-watch"])
    assert names == {*FOLLOWED_EVENTS, "Newstate", "Newexten"}
    assert "(action(include),name(Newstate),header(ChannelState),method(exact)) = 6" in filters
    newexten = "(action(include),name(Newexten),header(Application),method(exact)) = Playback"
    assert newexten in filters  # the voicemail drop's message, nothing else of the dialplan
    assert re.search(r"(?m)^bindaddr = 127\.0\.0\.1$", manager)


def test_modules_keep_what_the_stack_needs() -> None:
    modules = (CONFIG_SOURCE / "modules.conf").read_text()
    assert "autoload = yes" in modules
    refused = set(re.findall(r"(?m)^noload => (\S+)\.so$", modules))
    needed = {"chan_pjsip", "res_pjsip", "res_pjsip_session", "res_pjsip_pubsub", "app_amd",
              "app_dial", "app_echo", "app_read", "app_userevent", "pbx_config",
              "res_rtp_asterisk", "codec_ulaw", "res_prometheus", "func_timeout",
              "app_db", "func_db", "func_strings"}  # fmt: skip
    assert not needed & refused
    assert {"res_resolver_unbound", "chan_iax2", "app_voicemail"} <= refused


# -- audio ------------------------------------------------------------------------------------


def read_pcap(path: Path) -> list[tuple[float, bytes]]:
    data = path.read_bytes()
    magic, major, minor, _, _, _, link = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, link) == (0xA1B2C3D4, 2, 4, 1)
    packets, offset = [], 24
    while offset < len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[offset : offset + 16])
        assert incl == orig
        frame = data[offset + 16 : offset + 16 + incl]
        assert frame[12:14] == b"\x08\x00"  # IPv4
        assert frame[23] == 17  # UDP
        packets.append((sec + usec / 1e6, frame[14 + 20 + 8 :]))
        offset += 16 + incl
    return packets


def test_rtp_pcap_has_20ms_pcmu_packets(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 2  # 512 bytes: 3 full packets and one padded
    count = audio.write_rtp_pcap(tmp_path / "x.pcap", payload)
    packets = read_pcap(tmp_path / "x.pcap")
    assert count == len(packets) == 4
    for i, (t, rtp) in enumerate(packets):
        v_p_x_cc, m_pt, seq, ts, ssrc = struct.unpack("!BBHII", rtp[:12])
        assert v_p_x_cc == 0x80
        assert m_pt == (0x80 if i == 0 else 0)  # marker on the first packet, PT 0 (PCMU)
        assert (seq, ts, ssrc) == (i, i * 160, audio.SSRC)
        assert len(rtp) == 12 + 160
        assert t == pytest.approx(i * 0.020)
    assert packets[3][1][12 + 32 :] == b"\xff" * 128  # padded with mu-law silence
    assert audio.duration_s(tmp_path / "x.pcap") == pytest.approx(0.08)


def test_ipv4_header_checksum_verifies() -> None:
    frame = audio._frame(b"x" * 20)
    ip = frame[14:34]
    assert audio._ipv4_checksum(ip) == 0  # a correct header sums to 0xFFFF


# -- apt sources ------------------------------------------------------------------------------


def test_mirror_from_deb822_sources_skips_security(tmp_path: Path) -> None:
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: x-security\n\n"
        "Types: deb\nURIs: https://mirror.example/debian/\nSuites: x\n"
    )
    assert debian_mirror(d, tmp_path / "missing.list") == "https://mirror.example/debian"


def test_mirror_from_one_line_sources(tmp_path: Path) -> None:
    sources = tmp_path / "sources.list"
    sources.write_text("# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n")
    assert debian_mirror(tmp_path / "none", sources) == "http://mirror.example/debian"
