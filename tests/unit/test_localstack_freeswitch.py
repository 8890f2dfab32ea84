"""The FreeSWITCH build step and instance config of the local stack, without building or running."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ops.localstack import freeswitch, fsbuild
from ops.localstack.fsbuild import FreeSwitchBuild, FreeSwitchBuildError

PBX_CONFIG = Path(__file__).resolve().parents[2] / "pbx-config" / "freeswitch"


def test_a_checksum_mismatch_is_refused_naming_the_archive(tmp_path: Path) -> None:
    for name in fsbuild.ARCHIVES:
        (tmp_path / name).write_bytes(b"not the archive")
    with pytest.raises(FreeSwitchBuildError, match="freeswitch-v1.10.12.tar.xz: sha256"):
        fsbuild.verify_sources(tmp_path)


def test_a_missing_archive_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FreeSwitchBuildError, match="missing"):
        fsbuild.verify_sources(tmp_path)


def test_the_cache_key_follows_the_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    key = fsbuild.cache_key()
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert fsbuild.cache_key() == key
    monkeypatch.setattr(fsbuild, "CONFIGURE_FLAGS", (*fsbuild.CONFIGURE_FLAGS, "--x"))
    assert fsbuild.cache_key() != key
    monkeypatch.setenv("DIALER_FREESWITCH_CACHE", "/somewhere")
    assert fsbuild.prefix_path() == Path(f"/somewhere/freeswitch-{fsbuild.cache_key()}")


def test_every_built_module_is_loaded_but_the_named_ones() -> None:
    built = {m.rsplit("/", 1)[1] for m in fsbuild.MODULES}
    assert set(freeswitch.LOAD) == built - set(freeswitch.NOT_LOADED)
    assert set(freeswitch.NOT_LOADED) <= built
    dialplan = (PBX_CONFIG / "dialplan" / "dialer.xml").read_text()
    assert "avmd_" not in dialplan  # no application of the module that is not loaded


def test_no_preprocessor_line_hides_in_a_comment_of_pbx_config() -> None:
    """FreeSWITCH runs X-PRE-PROCESS lines even inside XML comments (issue 16)."""
    for path in PBX_CONFIG.rglob("*.xml"):
        for comment in re.findall(r"<!--.*?-->", path.read_text(), re.DOTALL):
            assert "X-PRE-PROCESS" not in comment, path
            assert "$${" not in comment, path


def _layout(tmp_path: Path) -> freeswitch.FreeSwitchLayout:
    return freeswitch.FreeSwitchLayout(
        build=FreeSwitchBuild(prefix=Path("/opt/fs"), version=""),
        dir=tmp_path / "freeswitch",
        sip_port=20414,
        esl_port=20415,
        esl_password="0123abcd" * 4,
        rtp_start=20416,
        rtp_end=20815,
        gateways=(("carrier", 20401), ("carrier-dead", 20411)),
    )


def test_the_rendered_config_sets_the_stack_secret_port_and_gateways(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    conf = freeswitch.render_config(layout)
    main = (conf / "freeswitch.xml").read_text()
    esl = (conf / "event_socket.conf.xml").read_text()
    assert f'data="dialer_esl_password={layout.esl_password}"' in main
    assert '<param name="listen-port" value="20415"/>' in esl
    assert "$${dialer_esl_password}" in esl
    assert '<param name="proxy" value="127.0.0.1:20401"/>' in main
    assert '<param name="rtp-start-port" value="20416"/>' in main
    assert not (conf / "dialer.xml").read_text().startswith("<?xml")
    assert conf.stat().st_mode & 0o077 == 0
    argv = layout.argv()
    assert argv[:2] == ["/opt/fs/bin/freeswitch", "-nf"]
    assert freeswitch.owns(layout, " ".join(argv))


def test_sofia_status_running_is_read_from_the_listing() -> None:
    listing = (
        "                     Name\t   Type\t                                      Data\tState\n"
        "=================================================================================\n"
        "              dialer\tprofile\t           sip:mod_sofia@127.0.0.1:20414\tRUNNING (0)\n"
        "     dialer::carrier\tgateway\t                   sip:dialer@127.0.0.1:20401\tNOREG\n"
    )
    assert freeswitch.profile_running(listing)
    assert not freeswitch.profile_running(listing.replace("RUNNING", "DOWN"))


def test_the_gateways_of_the_trunks_are_read_from_the_listing() -> None:
    listing = (
        "              dialer\tprofile\t           sip:mod_sofia@127.0.0.1:20414\tRUNNING (0)\n"
        "dialer::carrier-dead\tgateway\t                   sip:dialer@127.0.0.1:20411\tNOREG\n"
        "     dialer::carrier\tgateway\t                   sip:dialer@127.0.0.1:20401\tNOREG\n"
    )
    assert freeswitch.gateways_listed(listing, ["carrier", "carrier-dead"])
    assert not freeswitch.gateways_listed(listing, ["carrier", "backup"])
    assert not freeswitch.gateways_listed(listing.replace("dialer::", "other::"), ["carrier"])
