"""The MQTT bridge: retained states out after every commit, call-button commands in, device presence, self-healing.

Threads: paho's network thread (connect, reconnect, callbacks), a publisher thread fed by the writer's commit
listener (which only appends and wakes it: the writer never waits for the broker), and a command thread that runs
button commands through the single writer one at a time. Announcements come from the announcer's player threads
(`announce`, its `mqtt` output), paced like the speaker and boards. A broker that is down degrades to log lines.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.devices.mqtt import payloads, topics
from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.service import QueueService
from sync.contract import Event, event_type

if TYPE_CHECKING:
    from edge.devices.audio.announcer import Announcement

log = logging.getLogger("qms.mqtt")
SETTINGS_FILE = "mqtt.json"
COMMAND_TIMEOUT = 10.0
EDGE_DEVICE_ID = "qms-edge"
ANNOUNCE_EXPIRY_SECONDS = 60  # the broker drops an announcement not delivered by then: a late call misleads
_STOP = object()

PresenceListener = Callable[[str, bool, datetime], None]
DeviceCheck = Callable[[str, str], str | None]  # (device_id, counter_id) -> an error code, or None when allowed


class MqttSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the appliance reaches its broker (written by `qms-edge devices mqtt-config` into the data dir)."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str = EDGE_DEVICE_ID
    password: str = ""
    keepalive: int = 30
    # Where `qms-edge devices mqtt-config` wrote the broker's files, and how: the appliance rewrites them and reloads
    # the broker (SIGHUP) after every pairing and revocation.
    broker_dir: str = ""
    bind: str = "0.0.0.0"
    persistence: bool = True


def load_settings(data_dir: Path) -> MqttSettings | None:
    """The bridge settings of a data dir, or None when MQTT is not configured there."""
    path = data_dir / SETTINGS_FILE
    if not path.exists():
        return None
    return msgspec.json.decode(path.read_bytes(), type=MqttSettings)


class NoCurrentTicket(DomainError):
    """A button asked to act on the counter's ticket, but the counter has none in the right state."""

    status = 409
    code = "no_current_ticket"


class MqttBridge:
    """Bridges the single writer and the branch's Mosquitto."""

    def __init__(
        self,
        service: QueueService,
        settings: MqttSettings,
        *,
        on_presence: PresenceListener | None = None,
        check_device: DeviceCheck | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.on_presence = on_presence
        self.check_device = check_device
        self.branch = service.view.state.branch_id
        self.presence: dict[str, tuple[bool, datetime]] = {}
        self.connected = threading.Event()
        self.published = 0  # statistics for tests and the benchmark
        self._published: dict[str, bytes] = {}  # retained topic -> last payload body (without seq)
        self._pending: list[Event] = []
        self._republish = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._commands: queue.Queue[Any] = queue.Queue(maxsize=10_000)
        self._threads: list[threading.Thread] = []
        self._client = self._make_client()

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{EDGE_DEVICE_ID}-{self.branch}", protocol=mqtt.MQTTv5
        )
        client.username_pw_set(self.settings.username, self.settings.password)
        if self.branch:
            client.will_set(topics.device_status(self.branch, EDGE_DEVICE_ID), b"offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.max_queued_messages_set(10_000)
        client.max_inflight_messages_set(1000)  # bursts of retained states must not wait for PUBACKs
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        return client

    def start(self) -> None:
        """Connect in the background (retrying forever) and start the publisher and command threads."""
        self.service.subscribe_commits(self.on_commit)
        self._client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive)
        self._client.loop_start()
        for target, name in ((self._publish_loop, "qms-mqtt-pub"), (self._command_loop, "qms-mqtt-cmd")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Say `offline`, disconnect and stop the threads."""
        self._stopping.set()
        self._wake.set()
        self._commands.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=5)
        if self.connected.is_set() and self.branch:
            info = self._client.publish(topics.device_status(self.branch, EDGE_DEVICE_ID), b"offline", 1, True)
            info.wait_for_publish(timeout=2)
        self._client.disconnect()
        self._client.loop_stop()

    # ---- paho callbacks (network thread) ---------------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Properties | None
    ) -> None:
        if reason.is_failure:
            log.warning("MQTT broker refused the connection: %s", reason)
            return
        log.info("MQTT connected to %s:%s", self.settings.host, self.settings.port)
        self._subscribe(client)
        with self._lock:
            self._republish = True  # the broker may have lost retained messages (restart without persistence)
        self.connected.set()
        self._wake.set()

    def _subscribe(self, client: mqtt.Client) -> None:
        if not self.branch:
            return
        client.subscribe(
            [(topics.all_of(self.branch, "counter_cmd"), 1), (topics.all_of(self.branch, "device_status"), 1)]
        )
        client.publish(topics.device_status(self.branch, EDGE_DEVICE_ID), b"online", 1, True)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Properties | None
    ) -> None:
        if self.connected.is_set():
            log.warning("MQTT connection lost (%s); reconnecting in the background", reason)
        self.connected.clear()

    def _on_socket_open(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        # paho leaves Nagle on: a state published right after another would wait for the broker's delayed ACK (~40 ms).
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        log.debug("MQTT broker %s:%s unreachable; retrying", self.settings.host, self.settings.port)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = topics.parse(message.topic)
        except topics.TopicError:
            return
        if topic.kind == "device_status":
            self._on_status(topic.subject, bytes(message.payload))
        elif topic.kind == "counter_cmd":
            try:
                self._commands.put_nowait((topic.subject, message.payload))
            except queue.Full:
                log.warning("MQTT command queue full; dropped a command for counter %s", topic.subject)

    def _on_status(self, device_id: str, payload: bytes) -> None:
        if device_id == EDGE_DEVICE_ID or payload not in (b"online", b"offline"):
            return
        online = payload == b"online"
        now = datetime.now(UTC)
        self.presence[device_id] = (online, now)
        if self.on_presence is not None:
            try:
                self.on_presence(device_id, online, now)
            except Exception:
                log.exception("presence listener failed")

    # ---- state out -------------------------------------------------------------------------------------------

    def on_commit(self, events: list[Event]) -> None:
        """Commit listener (writer thread): remember the events and wake the publisher; never blocks."""
        with self._lock:
            self._pending.extend(events)
        self._wake.set()

    def _publish_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._stopping.is_set():
                return
            if not self.connected.is_set():
                continue  # pending events stay; the next connect republishes the full state anyway
            with self._lock:
                events, self._pending = self._pending, []
                force, self._republish = self._republish, False
            try:
                self._publish(events, force=force)
            except Exception:
                log.exception("MQTT publish failed")

    def _publish(self, events: list[Event], *, force: bool) -> None:
        view = self.service.view
        if not self.branch and view.state.branch_id:
            self.branch = view.state.branch_id  # configured after start: now we know our topics
            self._subscribe(self._client)
        if not self.branch:
            return
        for event in events:
            self._send(topics.event(self.branch, event_type(event)), payloads.event_payload(event), retain=False, qos=0)
        if not events and not force:
            return
        seq = view.seq
        for counter_id in view.state.counters:
            body = payloads.counter_state(view, counter_id)
            self._retained(topics.counter_state(self.branch, counter_id), body, seq, force=force)
        for area, body in payloads.display_states(view).items():
            self._retained(topics.display_state(self.branch, area), body, seq, force=force)

    def _retained(self, topic: str, body: dict[str, Any], seq: int, *, force: bool) -> None:
        """Publish a retained state when it changed (or on a republish); `seq` says how fresh it is."""
        key = payloads.encoder.encode(body)
        if not force and self._published.get(topic) == key:
            return
        if self._send(topic, {"seq": seq, **body}, retain=True, qos=1):  # seq first: cheap to read on a device
            self._published[topic] = key

    def _send(
        self, topic: str, body: dict[str, Any], *, retain: bool, qos: int, properties: Properties | None = None
    ) -> bool:
        info = self._client.publish(topic, payloads.encoder.encode(body), qos=qos, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.debug("MQTT publish to %s not queued: %s", topic, mqtt.error_string(info.rc))
            return False
        self.published += 1
        return True

    # ---- announcements out ----------------------------------------------------------------------------------

    def announce(self, announcement: Announcement) -> None:
        """The announcer's `mqtt` output (a player thread): tell the area's speakers; a broker failure is only logged.

        Called when the announcement starts playing, its WAV already fetchable, so speakers follow the same pace as
        the appliance's speaker and boards. Nothing is queued while the broker is away: paho would deliver stale calls
        after the reconnect, and the boards (retained display state) show what was missed anyway.
        """
        if not self.branch or self._stopping.is_set():
            return
        if not self.connected.is_set():
            log.info("MQTT broker unreachable: announcement of %s (seq %s) not sent to speakers",
                     announcement.ticket_number, announcement.seq)  # fmt: skip
            return
        expiry = Properties(PacketTypes.PUBLISH)
        expiry.MessageExpiryInterval = ANNOUNCE_EXPIRY_SECONDS
        try:
            topic = topics.audio_announce(self.branch, announcement.area)
            self._send(topic, payloads.announcement(announcement), retain=False, qos=1, properties=expiry)
        except Exception:
            log.exception("MQTT announcement of seq %s failed", announcement.seq)

    # ---- commands in -----------------------------------------------------------------------------------------

    def _command_loop(self) -> None:
        while True:
            item = self._commands.get()
            if item is _STOP:
                return
            counter_id, raw = item
            try:
                self._handle(counter_id, raw)
            except Exception:
                log.exception("MQTT command for counter %s failed", counter_id)

    def _handle(self, counter_id: str, raw: bytes) -> None:
        """Decode, authorize, run through the single writer, answer on the device's reply topic."""
        try:
            cmd = payloads.command_decoder.decode(raw)
        except msgspec.DecodeError as exc:
            log.warning("MQTT command for counter %s is malformed: %s", counter_id, exc)
            return
        refused = self.check_device(cmd.device_id, counter_id) if self.check_device else None
        if refused is None and self.on_presence is not None:
            self.on_presence(cmd.device_id, True, datetime.now(UTC))  # a press is a sign of life (last seen)
        if refused is not None:
            self._reply(cmd, {"ok": False, "code": refused, "detail": f"device {cmd.device_id!r}: {refused}"})
            return
        started = time.perf_counter()
        try:
            outcome = self.service.submit(self._command(cmd, counter_id)).result(COMMAND_TIMEOUT)
        except DomainError as exc:
            self._reply(cmd, {"ok": False, "code": exc.code, "detail": exc.detail})
            return
        ticket = outcome.response.get("ticket", outcome.response) if cmd.action == "call_next" else outcome.response
        body: dict[str, Any] = {"ok": True, "replayed": outcome.replayed, "ticket": None}
        if ticket:
            body["ticket"] = {k: ticket.get(k) for k in ("ticket_id", "ticket_number", "status")}
        else:
            body["reason"] = outcome.response.get("reason")
        log.debug("MQTT %s for counter %s in %.1f ms", cmd.action, counter_id, (time.perf_counter() - started) * 1e3)
        self._reply(cmd, body)

    def _command(self, cmd: payloads.ButtonCommand, counter_id: str) -> c.Command:
        """The same engine command the web would build for this button press."""
        common: dict[str, Any] = {"actor": cmd.device_id, "request_id": cmd.request_id, "counter_id": counter_id}
        if cmd.action == "call_next":
            return c.CallNext(**common)
        ticket_id = cmd.ticket_id or self._ticket_for(cmd, counter_id)
        match cmd.action:
            case "recall":
                return c.Recall(ticket_id=ticket_id, **common)
            case "start":
                return c.Start(ticket_id=ticket_id, **common)
            case "complete":
                return c.Complete(ticket_id=ticket_id, outcome=cmd.outcome, **common)
            case _:
                return c.NoShow(ticket_id=ticket_id, **common)

    def _ticket_for(self, cmd: payloads.ButtonCommand, counter_id: str) -> str:
        """The ticket a button means: the one its request already acted on (a redelivery), else the counter's."""
        done = self.service.read(
            lambda conn: conn.execute(
                "SELECT e.ticket_id FROM requests r JOIN events e ON e.seq = r.seq WHERE r.request_id = ?",
                (cmd.request_id,),
            ).fetchone()
        )
        if done and done[0]:
            return str(done[0])
        counter = self.service.view.state.counters.get(counter_id)
        if counter is None or counter.current_ticket is None:
            raise NoCurrentTicket(f"counter {counter_id!r} has no current ticket to {cmd.action.replace('_', ' ')}")
        return counter.current_ticket

    def _reply(self, cmd: payloads.ButtonCommand, body: dict[str, Any]) -> None:
        if not self.branch:
            return
        try:
            topic = topics.device_reply(self.branch, cmd.device_id)
        except topics.TopicError:
            return
        self._send(topic, {"request_id": cmd.request_id, "action": cmd.action, **body}, retain=False, qos=1)
