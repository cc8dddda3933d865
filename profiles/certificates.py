"""Certificates stored as a connection's secret: a PEM private key and its certificate.

Kept beside the connection model, which checks a pasted certificate when it is saved; the
Graph backend reads the same text when it signs in.
"""

from __future__ import annotations

import re

PRIVATE_KEY_PEM = re.compile(r"-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----.+?"
                             r"-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----", re.S)
CERTIFICATE_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)


def normalize_pem(text: str) -> str:
    """PEM blocks as PEM readers want them, however they were pasted: a password field
    drops the line breaks, a text area may add spaces or CRs. Header lines inside a block
    (an encrypted key's Proc-Type) are not supported: such keys are refused by MSAL anyway."""
    blocks = []
    for label, body in _PEM_BLOCK.findall(text or ""):
        data = re.sub(r"\s+", "", body)
        lines = [data[i:i + 64] for i in range(0, len(data), 64)]
        blocks.append("\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]))
    return "\n".join(blocks) + "\n" if blocks else text


def is_certificate(secret: str) -> bool:
    """Whether a connection's secret is a certificate (PEM private key + certificate)."""
    return bool(PRIVATE_KEY_PEM.search(secret or ""))
