"""HTTPS for a visitor on another machine (issue 18, items 1 and 3): certificates, clear errors,
the page, /status and the websocket over TLS, and a browser on a second test host with its
microphone."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from dyadic.engine.cli.main import main
from dyadic.engine.harness import netlab
from dyadic.engine.harness.serve_process import ServeProcess
from dyadic.engine.serve import tls


def _sans(certfile):
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n.value) for n in alt}


def test_a_self_signed_certificate_names_the_server_and_is_kept(tmp_path):
    names = ["localhost", "127.0.0.1", "10.231.9.1", "demo.example.org"]
    first = tls.self_signed(names, tmp_path)
    assert _sans(first.certfile) == set(names)
    assert len(first.fingerprint) == 32 * 3 - 1 and first.fingerprint.count(":") == 31
    assert first.keyfile.stat().st_mode & 0o077 == 0  # the key is the owner's alone
    again = tls.self_signed(list(reversed(names)), tmp_path)
    assert again == first  # cached: the visitor's exception in the browser stays valid
    other = tls.self_signed(["localhost"], tmp_path)
    assert other.fingerprint != first.fingerprint


@pytest.fixture
def pair(tmp_path):
    one = tls.self_signed(["localhost"], tmp_path / "one")
    two = tls.self_signed(["127.0.0.1"], tmp_path / "two")
    return one, two


def _serve_error(args, capsys) -> str:
    code = main(["serve", *args, "--port", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_certificates_are_one_line_naming_the_file(pair, tmp_path, capsys):
    from cryptography.hazmat.primitives import serialization

    one, two = pair
    missing = tmp_path / "nope.pem"
    err = _serve_error(["--ssl-certfile", str(missing), "--ssl-keyfile", str(one.keyfile)], capsys)
    assert f"{missing}: no such certificate file" in err
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    err = _serve_error(["--ssl-certfile", str(garbage), "--ssl-keyfile", str(one.keyfile)], capsys)
    assert f"{garbage}: not a PEM certificate" in err
    err = _serve_error(["--ssl-certfile", str(one.certfile), "--ssl-keyfile", str(two.keyfile)], capsys)
    assert f"{two.keyfile}: this key does not belong to the certificate {one.certfile}" in err
    key = serialization.load_pem_private_key(one.keyfile.read_bytes(), None)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    err = _serve_error(["--ssl-certfile", str(one.certfile), "--ssl-keyfile", str(locked)], capsys)
    assert f"{locked}: the key is encrypted" in err
    err = _serve_error(["--ssl-certfile", str(one.certfile)], capsys)
    assert "--ssl-certfile and --ssl-keyfile go together" in err
    err = _serve_error(["--ssl-self-signed", "--ssl-certfile", str(one.certfile), "--ssl-keyfile", "k"], capsys)
    assert "not both" in err


def test_https_serves_the_page_status_and_the_websocket():
    import asyncio

    from dyadic.engine.harness.probe import probe

    with ServeProcess("--ssl-self-signed") as server:
        assert server.url.startswith("https://127.0.0.1:") and server.ws.startswith("wss://")
        cert = tls.self_signed(tls.certificate_names("127.0.0.1", []), tls_cache())
        log = server.log()
        assert f"TLS certificate SHA-256 {cert.fingerprint}" in log
        verified = ssl.create_default_context(cafile=str(cert.certfile))  # as a browser that trusts it
        with urllib.request.urlopen(server.url, timeout=10, context=verified) as r:
            assert b"<html" in r.read().lower()
        assert server.status()["sessions"] == 0
        result = asyncio.run(probe(server.ws, seconds=2.0, insecure=True))
        assert not result.errors and result.fps() > 25
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):  # nobody trusts it by default
            urllib.request.urlopen(server.url, timeout=10)


def tls_cache():
    from dyadic.datasets import sample_cache_dir

    return sample_cache_dir() / "tls"


@pytest.mark.skipif(netlab.unavailable() is not None, reason=f"no test hosts here: {netlab.unavailable()}")
def test_a_browser_on_another_host_speaks_over_https_and_sees_30_fps():
    """Issue 18 item 3: the server on one test host with a self-signed certificate, headless
    Chromium on the other with its fake microphone, choosing the browser microphone."""
    with netlab.TwoHosts() as net:
        plain = ServeProcess(host=net.server_ip, wrap=net.on("server"))
        assert "browsers on other machines will not give the page their microphone" in plain.stop()
        with ServeProcess("--ssl-self-signed", host=net.server_ip, wrap=net.on("server")) as server:
            assert server.url == f"https://{net.server_ip}:{server.port}/"
            cmd = [sys.executable, "-m", "dyadic.engine.cli", "probe", server.ws, "--browser", "--mic", "--insecure"]
            out = subprocess.run(
                [*net.on("client"), *cmd, "--seconds", "11"], capture_output=True, text=True, timeout=150
            )
            assert out.returncode == 0, out.stderr[-3000:] + server.stop()[-2000:]
    samples = json.loads(out.stdout.strip().splitlines()[-1])
    t = np.array([s["t"] for s in samples])
    decoded = np.array([s["framesDecoded"] or 0 for s in samples], float)
    late = t >= t[-1] - 10.0
    assert decoded[-1] - decoded[late][0] >= 280 * (t[-1] - t[late][0]) / 10.0
    state = samples[-1]["state"]
    assert state["source"]["kind"] == "browser-mic", state
    assert state["source"]["level_dbfs"] is not None and state["source"]["level_dbfs"] > -50, state
