"""Benchmark: event -> MQTT subscriber latency with 200 subscribed devices (budget p99 <= 50 ms).

A real Mosquitto with auth and ACLs; the appliance's writer and bridge in this process; 200 display devices (each
with its own login) in 2 subscriber processes, all on their area's retained display state, so every call fans out to
200 devices. Latency = the subscriber's receive time minus the writer's commit time of the seq the state carries
(CLOCK_MONOTONIC is system-wide on Linux, so the two processes compare times directly).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from edge.auth import load_secret
from edge.devices import registry
from edge.devices.mqtt.bridge import MqttBridge, load_settings
from edge.engine import commands as c
from edge.service import QueueService
from tests.bench._support import bench_line, many_counters_config, percentile
from tests.edge.devices.mosquitto import Mosquitto, wait_for

DEVICES = 200
PROCESSES = 2
COUNTERS = 20
CALLS = 300
CALLS_PER_SECOND = float(os.environ.get("QMS_BENCH_MQTT_RATE", "20"))  # calls/s; each is start + complete + call-next
BRANCH = "jkt-sudirman"
TOPIC = f"qms/{BRANCH}/display/lantai-1/state"

SUBSCRIBERS = r"""
# N display devices as raw MQTT 3.1.1 clients (asyncio protocols, one thread for all): the figure is the broker's
# and the appliance's latency, not the cost of 200 paho threads fighting over one GIL.
import asyncio, json, struct, sys, time

port, topic, accounts = int(sys.argv[1]), sys.argv[2].encode(), json.loads(sys.argv[3])
received = []

def utf8(b):
    return struct.pack("!H", len(b)) + b

def packet(kind, body):
    n, out = len(body), bytearray([kind])
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out) + body

class Device(asyncio.Protocol):
    def __init__(self, user, password, ready):
        self.user, self.password, self.ready, self.buf = user, password, ready, bytearray()

    def connection_made(self, transport):
        self.transport = transport
        head = utf8(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 60)
        transport.write(packet(0x10, head + utf8(self.user.encode()) + utf8(self.user.encode())
                               + utf8(self.password.encode())))

    def data_received(self, data):
        now = time.monotonic()
        buf = self.buf
        buf += data
        while len(buf) >= 2:
            length, mult, i = 0, 1, 1
            while True:
                if i >= len(buf):
                    return
                b = buf[i]
                length += (b & 127) * mult
                mult *= 128
                i += 1
                if b < 128:
                    break
            if len(buf) < i + length:
                return
            first, rest = buf[0], bytes(buf[i:i + length])
            del buf[:i + length]
            self.handle(first, rest, now)

    def handle(self, first, rest, now):
        kind = first >> 4
        if kind == 2:  # CONNACK
            assert rest[1] == 0, (self.user, rest)
            self.transport.write(packet(0x82, struct.pack("!H", 1) + utf8(topic) + bytes([1])))
        elif kind == 9:  # SUBACK
            self.ready.release()
        elif kind == 3:  # PUBLISH
            qos, retain = (first >> 1) & 3, first & 1
            offset = 2 + struct.unpack("!H", rest[:2])[0]
            if qos:
                self.transport.write(b"\x40\x02" + rest[offset:offset + 2])
                offset += 2
            payload = rest[offset:]
            seq = int(payload[7:payload.index(b",")])  # {"seq":N,...
            received.append((self.user, seq, now, bool(retain)))

async def main():
    loop = asyncio.get_running_loop()
    ready = asyncio.Semaphore(0)
    for user, password in accounts:
        await loop.create_connection(lambda u=user, p=password: Device(u, p, ready), "127.0.0.1", port)
    for _ in accounts:
        await asyncio.wait_for(ready.acquire(), 30)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    print(json.dumps(received), flush=True)

asyncio.run(main())
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A branch with 20 counters in one area and 200 paired display devices."""
    data = tmp_path / "data"
    service = QueueService(data)
    try:
        config = msgspec.structs.replace(many_counters_config(COUNTERS), branch_id=BRANCH)
        service.execute(c.ApplyConfig(actor="bench", config=config, base_version=0))
        now = datetime.now(UTC)

        def register(conn: object) -> None:
            for i in range(DEVICES):
                code = registry.new_pairing_code()
                registry.add_device(conn, device_id=f"board-{i:03}", device_type="display", code=code, now=now,  # type: ignore[arg-type]
                                    area_id="lantai-1")  # fmt: skip
                registry.pair(conn, code, now)  # type: ignore[arg-type]

        service.submit_store(register).result(60)
        for _ in range(CALLS):
            service.execute(c.Enqueue(actor="bench", service_id="teller"))
    finally:
        service.stop()
    return data


def test_event_to_mqtt_subscriber_latency_200_devices(data_dir: Path) -> None:
    broker = Mosquitto(data_dir, BRANCH).start()
    service = QueueService(data_dir)
    committed: dict[int, float] = {}
    service.subscribe_commits(lambda events: committed.update(dict.fromkeys([e.seq for e in events], time.monotonic())))
    service.start()
    settings = load_settings(data_dir)
    assert settings is not None
    bridge = MqttBridge(service, settings)
    bridge.start()
    procs: list[subprocess.Popen[str]] = []
    try:
        wait_for(bridge.connected.is_set, what="bridge connected")
        secret = load_secret(data_dir)
        devices = service.read(registry.list_devices)
        accounts = [(d.device_id, registry.mqtt_password(secret, d.device_id, d.generation)) for d in devices]
        per = len(accounts) // PROCESSES
        for k in range(PROCESSES):
            chunk = json.dumps(accounts[k * per : (k + 1) * per])
            procs.append(subprocess.Popen([sys.executable, "-c", SUBSCRIBERS, str(broker.port), TOPIC, chunk],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))  # fmt: skip
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        first_seq = service.view.seq + 1
        started = time.monotonic()
        for i in range(CALLS):
            counter = str(i % COUNTERS + 1)
            current = service.view.state.counters[counter].current_ticket
            if current is not None:
                service.execute(c.Start(ticket_id=current, counter_id=counter))
                service.execute(c.Complete(ticket_id=current, counter_id=counter))
            service.execute(c.CallNext(counter_id=counter))
            time.sleep(max(0.0, started + (i + 1) / CALLS_PER_SECOND - time.monotonic()))  # pacing, not waiting
        last_seq = service.view.seq
        wait_for(lambda: bridge._published.get(TOPIC) is not None, what="the last state published")
        time.sleep(0.5)  # let the last fan-out drain before stopping the subscribers
        received: list[list[object]] = []
        for proc in procs:
            out, _ = proc.communicate("stop\n", timeout=60)
            received += json.loads(out.strip().splitlines()[-1])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        bridge.stop()
        service.stop()
        broker.cleanup()
    live = [(user, seq, t) for user, seq, t, retained in received if not retained and seq >= first_seq]  # type: ignore[operator]
    latencies = [(t - committed[seq]) * 1000 for _user, seq, t in live]  # type: ignore[index,operator]
    final = {user for user, seq, _t in live if seq == last_seq}
    bench_line(
        mqtt_delivery_p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        budget="p99 <= 50 ms",
        max_ms=max(latencies, default=float("nan")),
        devices=DEVICES,
        deliveries=len(latencies),
        events=last_seq - first_seq + 1,
        calls_per_s=CALLS_PER_SECOND,
        devices_with_final_state=len(final),
    )
    assert len(final) == DEVICES, f"only {len(final)} devices saw the final state"
