"""TLS for `dyadic serve`: the page, the websocket and /status over https.

Browsers give a page the microphone only in a secure context (https, or http on localhost), so a
visitor on another machine needs TLS. Either the user's certificate and key (`--ssl-certfile`,
`--ssl-keyfile`, uvicorn's names), checked here so that a wrong file is one line naming it, or one
made for this server (`--ssl-self-signed`) with the `cryptography` package: an ECDSA P-256 key and a
certificate for the server's names and addresses, valid for 397 days (browsers refuse longer),
cached under ~/.cache/dyadic/tls and made again when the names change or it is about to expire.
The visitor checks the SHA-256 fingerprint the server prints against the one the browser shows.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

VALID_DAYS = 397
RENEW_DAYS = 7  # made again when it expires sooner than this


class TlsError(ValueError):
    """A certificate or key that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Certificate:
    certfile: Path
    keyfile: Path
    fingerprint: str  # SHA-256 of the DER certificate, "AB:CD:..."


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TlsError(f"{path}: no such {what} file") from None
    except OSError as exc:
        raise TlsError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


def check_pair(certfile: str | Path, keyfile: str | Path) -> Certificate:
    """The certificate and key, read and checked: PEM, the key unencrypted, and the two a pair."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    certfile, keyfile = Path(certfile).expanduser(), Path(keyfile).expanduser()
    try:
        cert = x509.load_pem_x509_certificate(_read(certfile, "certificate"))
    except ValueError as exc:
        raise TlsError(f"{certfile}: not a PEM certificate ({exc})") from None
    try:
        key = serialization.load_pem_private_key(_read(keyfile, "key"), password=None)
    except TypeError:
        raise TlsError(f"{keyfile}: the key is encrypted; give it without a password") from None
    except ValueError as exc:
        raise TlsError(f"{keyfile}: not a PEM private key ({exc})") from None
    pem = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*pem) != cert.public_key().public_bytes(*pem):
        raise TlsError(f"{keyfile}: this key does not belong to the certificate {certfile}")
    digest = cert.fingerprint(_sha256())
    return Certificate(certfile, keyfile, ":".join(f"{b:02X}" for b in digest))


def _sha256():  # the hash object cryptography's fingerprint() takes
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def server_context(certificate: Certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.certfile, certificate.keyfile)
    return context


def self_signed(names: list[str], cache: Path) -> Certificate:
    """A certificate for `names` (host names and IP addresses), made once and kept in `cache`."""
    names = sorted(set(names))
    folder = cache / hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    if certfile.is_file() and keyfile.is_file() and _valid_for(certfile, RENEW_DAYS):
        try:
            return check_pair(certfile, keyfile)
        except TlsError:
            pass  # a damaged cache: made again below
    folder.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = _make(names)
    _write_private(keyfile, key_pem)
    certfile.write_bytes(cert_pem)
    return check_pair(certfile, keyfile)


def _valid_for(certfile: Path, days: int) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    except (OSError, ValueError):
        return False
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    return left > datetime.timedelta(days=days)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _make(names: list[str]) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"dyadic serve ({names[0]})")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, _sha256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def certificate_names(bind_host: str, public_hosts: list[str]) -> list[str]:
    """What a self-signed certificate should name: localhost, loopback, the bind address (or,
    bound to every address, this machine's name and its addresses) and every --public-host."""
    import socket

    names = {"localhost", "127.0.0.1", "::1", *public_hosts}
    if bind_host in ("0.0.0.0", "::", ""):
        hostname = socket.gethostname()
        names.add(hostname)
        try:
            names |= {str(info[4][0]) for info in socket.getaddrinfo(hostname, None)}
        except OSError:
            pass  # a name that does not resolve: the others still work
    else:
        names.add(bind_host)
    return sorted(n.split("%", 1)[0] for n in names)  # no IPv6 zone ids in a certificate
