"""Mints and reads session cookies with Python's itsdangerous, for chirp's interop tests.

Reads a JSON list of operations on stdin and writes a JSON list of results on stdout:
  {"op": "dumps", "secret", "salt", "digest": "sha1"|"sha256", "data", "timestamp"}
      -> {"cookie": str}
  {"op": "loads", "secret", "salt", "digest", "cookie"}
      -> {"data": obj, "timestamp": int} or {"error": str}
The serializer is URLSafeTimedSerializer, as the Python framework's session middleware uses
(zlib compression when it is shorter, django-concat key derivation).
"""

import hashlib
import json
import sys

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer


def serializer(op, timestamp=None):
    class FixedClock(TimestampSigner):
        def get_timestamp(self):
            return int(timestamp)

    kwargs = {"digest_method": getattr(hashlib, op["digest"])}
    signer = FixedClock if timestamp is not None else TimestampSigner
    return URLSafeTimedSerializer(
        op["secret"], salt=op["salt"], signer=signer, signer_kwargs=kwargs
    )


def run(op):
    if op["op"] == "dumps":
        return {"cookie": serializer(op, op["timestamp"]).dumps(op["data"])}
    if op["op"] == "loads":
        try:
            data, ts = serializer(op).loads(op["cookie"], return_timestamp=True)
        except BadSignature as e:
            return {"error": type(e).__name__}
        return {"data": data, "timestamp": int(ts.timestamp())}
    raise ValueError(f"unknown op {op['op']!r}")


if __name__ == "__main__":
    json.dump([run(op) for op in json.load(sys.stdin)], sys.stdout)
