"""Throw-away TLS certificates for tests, made with openssl (nothing is committed).

Keys are EC P-256, unencrypted PKCS#8 PEM, as ``scripts/broker.sh`` makes them, so a test can
stand in for any of its files: a second CA the broker does not know, a client certificate that
CA signed, a key that belongs to another certificate, an encrypted key.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.tools import require_tool

_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key."""

    cert: Path
    key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    openssl = require_tool("openssl", "Debian package `openssl`; the tests make certificates")
    proc = subprocess.run(
        [openssl, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"openssl {' '.join(map(str, args))}: {proc.stderr}"


def make_ca(directory: Path, name: str) -> Pair:
    """A self-signed CA ``<name>.pem`` / ``<name>.key`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    pair = Pair(directory / f"{name}.pem", directory / f"{name}.key")
    _openssl(
        "req",
        "-x509",
        *_KEY,
        "-keyout",
        pair.key,
        "-out",
        pair.cert,
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )
    return pair


def make_cert(ca: Pair, name: str, *, server: bool = False) -> Pair:
    """A certificate signed by ``ca``, next to it: a client's, or (``server``) one for
    127.0.0.1 and localhost."""
    directory = ca.cert.parent
    pair = Pair(directory / f"{name}.pem", directory / f"{name}.key")
    ext = directory / f"{name}.ext"
    usage = "serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost" if server else "clientAuth"
    ext.write_text(f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n")
    csr = directory / f"{name}.csr"
    _openssl("req", *_KEY, "-keyout", pair.key, "-out", csr, "-subj", f"/CN={name}", cwd=directory)
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca.cert,
        "-CAkey",
        ca.key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        ext,
        "-out",
        pair.cert,
        cwd=directory,
    )
    return pair


def encrypt_key(key: Path, out: Path, passphrase: str) -> Path:
    """``key`` encrypted with ``passphrase`` (AES-256), written to ``out``."""
    _openssl(
        "pkey", "-in", key, "-aes256", "-passout", f"pass:{passphrase}", "-out", out, cwd=out.parent
    )
    return out


@dataclass(frozen=True)
class TlsFiles:
    """What the TLS unit tests point the settings at."""

    ca: Pair
    client: Pair  # signed by ``ca``
    other: Pair  # a client certificate of another CA: its key does not match ``client``
    encrypted_key: Path  # ``client``'s key, encrypted with ``KEY_PASSPHRASE``


KEY_PASSPHRASE = "key-passphrase"


def make_tls_files(directory: Path) -> TlsFiles:
    ca = make_ca(directory / "a", "ca")
    client = make_cert(ca, "client")
    other = make_cert(make_ca(directory / "b", "other-ca"), "other-client")
    return TlsFiles(
        ca, client, other, encrypt_key(client.key, directory / "encrypted.key", KEY_PASSPHRASE)
    )


def mtls_env(files: TlsFiles, protocol: str = "SSL") -> dict[str, str]:
    """The environment of a client using ``files``' CA and client certificate."""
    return {
        "KAFKA_SECURITY_PROTOCOL": protocol,
        "KAFKA_SSL_CA_LOCATION": str(files.ca.cert),
        "KAFKA_SSL_CERT_LOCATION": str(files.client.cert),
        "KAFKA_SSL_KEY_LOCATION": str(files.client.key),
    }
