"""A self-signed certificate for ewsim's optional TLS listener.

MSAL accepts only https authorities, so tests that run MSAL against ewsim need TLS;
clients trust the certificate through `EwsServer.tls_ca_file` (requests' `verify=`).
One certificate per process: key generation is the slow part.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_lock = threading.Lock()
_files: tuple[str, str] | None = None


def certificate_files() -> tuple[str, str]:
    """(certificate PEM path, key PEM path) for 127.0.0.1 and localhost."""
    global _files
    with _lock:
        if _files is not None:
            return _files
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ewsim")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=365))
                .add_extension(x509.SubjectAlternativeName([
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        folder = Path(tempfile.mkdtemp(prefix="ewsim-tls-"))
        cert_path = folder / "cert.pem"
        key_path = folder / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        _files = (str(cert_path), str(key_path))
        return _files


def server_context() -> ssl.SSLContext:
    cert, key = certificate_files()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
