"""The gateway's OTA pieces without boards: the hybrid update key, release
manifests and their checks, chunk sizing, and the simulated board's reboot
loop (boards/simboot.py). Boards taking updates: tests/integration/test_boards_ota.py."""

from __future__ import annotations

import json
import sys

import pytest
from meshlink import cjson
from meshlink._compat import b64encode
from meshlink.errors import AuthError, ConfigError
from meshlink_gw.boards import ota, simboot


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    root = tmp_path_factory.mktemp("ota")
    ota.generate_update_key(root / "key")
    rel = ota.build_release(root / "gw", "unix", "1.2.3", root / "key" / ota.KEY_FILE)
    return root, rel


def test_key_files_are_private_and_a_second_key_needs_force(signed):
    root, _rel = signed
    assert (root / "key" / ota.KEY_FILE).stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError, match="exists"):
        ota.generate_update_key(root / "key")


def test_release_verifies_and_its_stream_is_manifest_then_files(signed):
    root, rel = signed
    pub = ota.load_public_key(root / "key" / ota.PUB_FILE)
    release = ota.load_release(rel, pub)
    board, version, files = ota.decode_manifest(release.manifest)
    assert (board, version, release.version) == ("unix", "1.2.3", "1.2.3")
    paths = [f["path"] for f in files]
    assert "main.py" not in paths and "otaboot.py" not in paths and "config.json" not in paths
    assert "app/app.mpy" in paths and "meshlink/boardlink.mpy" in paths
    body = b"".join((rel / "files" / p).read_bytes() for p in paths)
    assert release.stream == release.manifest + body
    assert release.manifest.decode().splitlines()[0] == "meshlink-firmware 1"


def test_another_key_a_changed_manifest_or_file_is_refused(signed, tmp_path):
    root, rel = signed
    ota.generate_update_key(tmp_path / "other")
    with pytest.raises(AuthError, match="does not verify"):
        ota.load_release(rel, ota.load_public_key(tmp_path / "other" / ota.PUB_FILE))
    pub = ota.load_public_key(root / "key" / ota.PUB_FILE)
    sig = json.loads((rel / ota.SIG_FILE).read_text())
    manifest = (rel / ota.MANIFEST_FILE).read_bytes()
    with pytest.raises(AuthError):  # one signature alone is not enough
        ota.verify_manifest(pub, manifest, {"ed25519": sig["ed25519"], "mldsa65": ""})
    with pytest.raises(AuthError):
        ota.verify_manifest(pub, manifest.replace(b"1.2.3", b"1.2.4"), sig)
    ota.verify_manifest(pub, manifest, sig)  # the untouched one verifies


def test_chunk_records_fit_the_boards_record_cap():
    data = bytes(range(256)) * 4
    size = ota.chunk_bytes(768)
    rec = {"t": "ota", "op": "chunk", "id": "ffffffffffffffff", "off": 10 ** 9,
           "data": b64encode(data[:size])}
    assert len(cjson.dumps(rec)) <= 768 < len(cjson.dumps(
        dict(rec, data=b64encode(data[:size + 48]))))


def test_manifest_tag_is_per_board_and_labelled():
    mh = bytes(32)
    a, b = ota.manifest_tag(bytes(32), mh), ota.manifest_tag(bytes([1]) * 32, mh)
    assert a != b and len(a) == 32
    assert ota.ota_key(bytes(32)) != bytes(32)


@pytest.mark.parametrize("text", ["", "meshlink-firmware 1\nboard unix\n",
                                  "meshlink-firmware 2\nboard unix\nversion 1\n",
                                  "meshlink-firmware 1\nboard unix\nversion 1\nfile x y z\n"])
def test_malformed_manifests_are_config_errors(text):
    with pytest.raises(ConfigError, match="malformed manifest"):
        ota.decode_manifest(text.encode())


def test_bad_versions_are_refused(signed):
    root, _rel = signed
    for bad in ("", "a b", "../x", "x" * 33):
        with pytest.raises(ConfigError, match="version"):
            ota.build_release(root / "gw", "unix", bad, root / "key" / ota.KEY_FILE)


def test_simboot_boots_again_on_exit_3_and_ends_on_anything_else(tmp_path):
    counter = tmp_path / "boots"
    code = ("import pathlib, sys; p = pathlib.Path(sys.argv[1]); "
            "n = int(p.read_text()) if p.exists() else 0; p.write_text(str(n + 1)); "
            "sys.exit(3 if n < 2 else 7)")
    rc = simboot.run_rebooting([sys.executable, "-c", code, str(counter)], str(tmp_path),
                               {"PATH": "/usr/bin:/bin"})
    assert rc == 7 and counter.read_text() == "3"
