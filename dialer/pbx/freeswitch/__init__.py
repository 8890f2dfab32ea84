"""FreeSWITCH adapter: ESL (dialer.pbx.esl) plus call correlation. No real FreeSWITCH was used."""

from dialer.pbx.freeswitch.adapter import FreeSwitchAdapter, FreeSwitchSettings

__all__ = ["FreeSwitchAdapter", "FreeSwitchSettings"]
