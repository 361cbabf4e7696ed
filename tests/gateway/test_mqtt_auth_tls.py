"""MQTT bridge with username/password and with TLS, against a real mosquitto."""

from __future__ import annotations

import datetime
import ipaddress
import json
import pathlib
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import DEADLINE_S
from meshlink.errors import TransportError
from meshlink_gw.bridges.mqtt_session import MqttSession
from mqtt_helpers import FakeMesh, Sub, bridge_config, started_bridge

NODE = "5a4b1c7e-0000-4000-8000-0000000000d1"


def _password_file(path: pathlib.Path, user: str, password: str) -> pathlib.Path:
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(path), user, password], check=True,
                   capture_output=True)
    return path


async def test_mqtt_wrong_password_refused_right_password_works(make_broker, tmp_path):
    pw = _password_file(tmp_path / "passwd", "gateway", "s3cret")
    broker = make_broker(password_file=pw).start()
    bad = MqttSession(bridge_config(broker, username="gateway", password="wrong"),
                      "bad-gw", ("meshlink/x/status", b"offline"), lambda mid: None)
    with pytest.raises(TransportError, match="refused"):
        await bad.open()
    await bad.close()
    sub = await Sub.start(broker, ["meshlink/+/sensor/#"], auth=("gateway", "s3cret"))
    bridge = await started_bridge(broker, FakeMesh(), username="gateway", password="s3cret")
    try:
        bridge.publish_reading(NODE, "attic", {"sensor": "humidity", "value": 55})
        topic, payload = await sub.message()
        assert topic.endswith("/sensor/humidity") and json.loads(payload)["value"] == 55
    finally:
        await bridge.stop()
        await sub.stop()


def _cert(subject: str, key, issuer_name, issuer_key, *, ca: bool, sans=()):
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pki(d: pathlib.Path) -> dict[str, str]:
    """A throwaway CA and a server certificate for localhost / 127.0.0.1."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MeshLink test CA")])
    ca = _cert("MeshLink test CA", ca_key, ca_name, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = _cert("localhost", key, ca_name, ca_key, ca=False, sans=sans)
    pem = serialization.Encoding.PEM
    (d / "ca.pem").write_bytes(ca.public_bytes(pem))
    (d / "server.pem").write_bytes(server.public_bytes(pem))
    (d / "server.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    return {"ca": str(d / "ca.pem"), "certfile": str(d / "server.pem"),
            "keyfile": str(d / "server.key")}


async def test_mqtt_tls_with_private_ca(make_broker, tmp_path):
    pki = _write_pki(tmp_path)
    broker = make_broker(tls={"certfile": pki["certfile"], "keyfile": pki["keyfile"]}).start()
    untrusted = MqttSession(bridge_config(broker, tls=True), "no-ca",
                            ("meshlink/x/status", b"offline"), lambda mid: None)
    with pytest.raises(TransportError, match="certificate"):
        await untrusted.open()  # the system store does not know our CA
    await untrusted.close()
    sub = await Sub.start(broker, ["meshlink/+/sensor/#"], cafile=pki["ca"])
    bridge = await started_bridge(broker, FakeMesh(), tls=True, ca_file=pki["ca"])
    try:
        for i in range(20):
            bridge.publish_reading(NODE, "shed", {"sensor": "temp", "value": i})
        got = [json.loads(p)["value"] for _, p in await sub.messages(20)]
        assert got == list(range(20))
        await bridge.wait_for(lambda b: b.stats["published"] == 20, DEADLINE_S)
    finally:
        await bridge.stop()
        await sub.stop()
