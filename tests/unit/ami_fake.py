"""An in-test AMI server fake that speaks the wire protocol (for the AMI client and adapter).

It answers like Asterisk 22 did in the transcripts of TESTBED.md (banner, Login, Originate,
list actions); its reader is its own, independent of the codec under test. Real-Asterisk tests
live with the integration stack.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field

from dialer.pbx.ami import AmiSettings

SECRET = "s3cret"
WAIT = 3.0  # upper bound for anything that should happen "soon"


@dataclass
class Action:
    """An action as the fake server read it."""

    session: int
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def name(self) -> str:
        return self.get("Action") or ""

    @property
    def action_id(self) -> str:
        return self.get("ActionID") or ""


Handler = Callable[["FakeSession", Action], Awaitable[None]]


@dataclass
class FakeSession:
    index: int
    writer: asyncio.StreamWriter

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, action: Action, response: str = "Success", **fields: str) -> None:
        await self.send(frame(Response=response, ActionID=action.action_id, **fields))

    def drop(self) -> None:
        self.writer.transport.abort()


async def eventually(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` until true (readiness is polled, never slept)."""
    async with asyncio.timeout(WAIT):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.005)


def frame(**headers: str) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"


def parse_actions(buffer: bytearray) -> list[list[tuple[str, str]]]:
    """The fake's own reader (independent of the codec under test)."""
    actions = []
    while (end := buffer.find(b"\r\n\r\n")) >= 0:
        raw = bytes(buffer[:end])
        del buffer[: end + 4]
        headers = []
        for line in raw.decode().split("\r\n"):
            key, _, value = line.partition(": ")
            headers.append((key, value))
        actions.append(headers)
    return actions


@dataclass
class FakeAmi:
    """A tiny AMI server: Login/Events/Filter/Ping/Logoff/Originate/CoreShowChannels."""

    secret: str = SECRET
    handlers: dict[str, Handler] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    sessions: list[FakeSession] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _new_session: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for session in self.sessions:
            session.drop()
        await self._server.wait_closed()

    def named(self, name: str) -> list[Action]:
        return [a for a in self.actions if a.name.lower() == name.lower()]

    async def wait_sessions(self, count: int) -> FakeSession:
        async with asyncio.timeout(WAIT):
            while len(self.sessions) < count:
                self._new_session.clear()
                await self._new_session.wait()
        return self.sessions[count - 1]

    async def wait_action(self, name: str, count: int = 1) -> Action:
        await eventually(lambda: len(self.named(name)) >= count)
        return self.named(name)[count - 1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = FakeSession(len(self.sessions) + 1, writer)
        self.sessions.append(session)
        self._new_session.set()
        buffer = bytearray()
        with suppress(ConnectionError):
            await session.send(b"Asterisk Call Manager/11.0.0\r\n")
            while data := await reader.read(65536):
                buffer += data
                for headers in parse_actions(buffer):
                    action = Action(session.index, headers)
                    self.actions.append(action)
                    handler = self.handlers.get(action.name, self._default)
                    await handler(session, action)
        writer.close()

    async def _default(self, session: FakeSession, action: Action) -> None:
        name = action.name.lower()
        if name == "login":
            if action.get("Secret") == self.secret:
                await session.reply(action, Message="Authentication accepted")
            else:
                await session.reply(action, "Error", Message="Authentication failed")
                session.drop()
        elif name == "events":
            mask = action.get("EventMask") or ""
            await session.reply(action, Events="Off" if mask == "off" else "On")
        elif name == "filter":
            await session.reply(action, Message="Filter Added")
        elif name == "ping":
            await session.reply(action, Ping="Pong", Timestamp="1700000000.000000")
        elif name == "logoff":
            await session.reply(action, "Goodbye", Message="Thanks for all the fish.")
            session.writer.close()
        elif name == "originate":
            await session.reply(action, Message="Originate successfully queued")
        elif name == "coreshowchannels":
            await core_show_channels(session, action, ["PJSIP/a-1", "PJSIP/b-2", "PJSIP/c-3"])
        else:
            await session.reply(action, "Error", Message="Invalid/unknown command")


async def core_show_channels(session: FakeSession, action: Action, channels: list[str]) -> None:
    aid = action.action_id
    await session.reply(action, EventList="start", Message="Channels will follow")
    for channel in channels:
        await session.send(frame(Event="CoreShowChannel", ActionID=aid, Channel=channel))
    await session.send(
        frame(
            Event="CoreShowChannelsComplete",
            ActionID=aid,
            EventList="Complete",
            ListItems=str(len(channels)),
        )
    )


def settings_for(fake: FakeAmi, **overrides: object) -> AmiSettings:
    values: dict[str, object] = {
        "port": fake.port,
        "username": "dialer",
        "secret": SECRET,
        "connect_timeout": 1.0,
        "action_timeout": 1.0,
        "reconnect_min": 0.02,
        "reconnect_max": 0.1,
        "keepalive_interval": 0,
    }
    values.update(overrides)
    return AmiSettings(**values)  # type: ignore[arg-type]
