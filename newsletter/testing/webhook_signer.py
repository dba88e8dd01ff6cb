"""Signs webhook bodies the way SendGrid does, for tests and benchmarks of ``/webhooks/sendgrid``.

SendGrid's Signed Event Webhook: ECDSA P-256 with SHA-256 over the timestamp
header's value followed by the raw body; the verification key is the public
key as base64 DER (SubjectPublicKeyInfo), which is what an admin pastes into
``sendgrid_webhook_public_key``.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.tracking.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER


@dataclass
class Signer:
    private: ec.EllipticCurvePrivateKey
    public_b64: str  # the setting ``sendgrid_webhook_public_key``

    @classmethod
    def new(cls) -> Signer:
        private = ec.generate_private_key(ec.SECP256R1())
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(private, base64.b64encode(der).decode())

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The headers SendGrid would send with ``body`` (now, or at ``timestamp``)."""
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        signature = self.private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
            TIMESTAMP_HEADER: stamp,
            "content-type": "application/json",
        }
