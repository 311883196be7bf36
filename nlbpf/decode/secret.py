"""Key material in a decoded message: redacted, and revealed only when asked.

The decoders of key attributes (keys.py, xfrm's algorithms in classes.py) give a
Secret: text that says `<redacted 32 bytes>` wherever it goes (JSON, summaries,
tests), holding the bytes it stands for. Only the output's Decoder, given
--show-secrets, reveals it (reveal()): the key in hex, or base64 for WireGuard's
keys, as `wg` prints them.
"""
import base64

from ..netlink import SECRET_PROTOCOLS


class Secret(str):
    __slots__ = ("raw", "b64")

    def __new__(cls, raw, b64=False):
        raw = bytes(raw)
        self = super().__new__(cls, "<redacted %d bytes>" % len(raw))
        self.raw = raw
        self.b64 = b64
        return self

    def revealed(self):
        return base64.b64encode(self.raw).decode("ascii") if self.b64 else self.raw.hex()


def _revealed(value):
    if isinstance(value, Secret):
        return value.revealed()
    if isinstance(value, dict):
        return {k: _revealed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_revealed(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_revealed(v) for v in value)
    return value


def reveal(decoded, show):
    """With show (--show-secrets), the keys of a Decoded message (and of the request
    an NLMSG_ERROR echoes) in the clear, in place; without, they stay redacted."""
    if not show or decoded.protocol not in SECRET_PROTOCOLS:
        return
    while decoded is not None:
        decoded.attrs = _revealed(decoded.attrs)
        decoded.fields = _revealed(decoded.fields)
        decoded = decoded.echoed
