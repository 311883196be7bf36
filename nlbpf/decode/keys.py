"""Attributes that carry key material, decoded with the key redacted.

nlbpf/secrets.py overwrites these bytes before anything is decoded (unless
--show-secrets); the decoders here make sure that the decoded view never shows
a key either, and say how long it was: "<redacted 32 bytes>". With
--show-secrets they print the key in hex.

Also the generic netlink "macsec" family, which pyroute2 has no class for
(include/uapi/linux/if_macsec.h), so that its attributes have names.
"""
import struct

from pyroute2.netlink import genlmsg, nla

from ..secrets import redacted
from .engine import ATTR_OVERRIDES

# -- MACsec (genl "macsec") -----------------------------------------------------
MACSEC_CMD_GET_TXSC = 0
MACSEC_CMD_ADD_RXSC = 1
MACSEC_CMD_DEL_RXSC = 2
MACSEC_CMD_UPD_RXSC = 3
MACSEC_CMD_ADD_TXSA = 4
MACSEC_CMD_DEL_TXSA = 5
MACSEC_CMD_UPD_TXSA = 6
MACSEC_CMD_ADD_RXSA = 7
MACSEC_CMD_DEL_RXSA = 8
MACSEC_CMD_UPD_RXSA = 9
MACSEC_CMD_UPD_OFFLOAD = 10


class macsec_msg(genlmsg):
    prefix = "MACSEC_ATTR_"
    nla_map = (
        ("MACSEC_ATTR_UNSPEC", "none"),
        ("MACSEC_ATTR_IFINDEX", "uint32"),
        ("MACSEC_ATTR_RXSC_CONFIG", "rxsc"),
        ("MACSEC_ATTR_SA_CONFIG", "sa"),
        ("MACSEC_ATTR_SECY", "hex"),
        ("MACSEC_ATTR_TXSA_LIST", "hex"),
        ("MACSEC_ATTR_RXSC_LIST", "hex"),
        ("MACSEC_ATTR_TXSC_STATS", "hex"),
        ("MACSEC_ATTR_SECY_STATS", "hex"),
        ("MACSEC_ATTR_OFFLOAD", "offload"),
    )

    class rxsc(nla):
        prefix = "MACSEC_RXSC_ATTR_"
        nla_map = (
            ("MACSEC_RXSC_ATTR_UNSPEC", "none"),
            ("MACSEC_RXSC_ATTR_SCI", "be64"),
            ("MACSEC_RXSC_ATTR_ACTIVE", "uint8"),
            ("MACSEC_RXSC_ATTR_SA_LIST", "hex"),
            ("MACSEC_RXSC_ATTR_STATS", "hex"),
            ("MACSEC_RXSC_ATTR_PAD", "hex"),
        )

    class sa(nla):
        prefix = "MACSEC_SA_ATTR_"
        nla_map = (
            ("MACSEC_SA_ATTR_UNSPEC", "none"),
            ("MACSEC_SA_ATTR_AN", "uint8"),
            ("MACSEC_SA_ATTR_ACTIVE", "uint8"),
            ("MACSEC_SA_ATTR_PN", "hex"),
            ("MACSEC_SA_ATTR_KEY", "hex"),
            ("MACSEC_SA_ATTR_KEYID", "hex"),
            ("MACSEC_SA_ATTR_STATS", "hex"),
            ("MACSEC_SA_ATTR_PAD", "hex"),
            ("MACSEC_SA_ATTR_SSCI", "uint32"),
            ("MACSEC_SA_ATTR_SALT", "hex"),
        )

    class offload(nla):
        prefix = "MACSEC_OFFLOAD_ATTR_"
        nla_map = (
            ("MACSEC_OFFLOAD_ATTR_UNSPEC", "none"),
            ("MACSEC_OFFLOAD_ATTR_TYPE", "uint8"),
            ("MACSEC_OFFLOAD_ATTR_PAD", "hex"),
        )


def _pn(raw):
    """u32, or u64 with XPN."""
    if len(raw) == 4:
        return struct.unpack("=I", raw)[0]
    if len(raw) == 8:
        return struct.unpack("=Q", raw)[0]
    return bytes(raw).hex()


# -- nl80211 ---------------------------------------------------------------------
_NL80211_KEY_NAMES = {1: "NL80211_KEY_DATA", 2: "NL80211_KEY_IDX", 3: "NL80211_KEY_CIPHER",
                      4: "NL80211_KEY_SEQ", 5: "NL80211_KEY_DEFAULT",
                      6: "NL80211_KEY_DEFAULT_MGMT", 7: "NL80211_KEY_TYPE",
                      8: "NL80211_KEY_DEFAULT_TYPES", 9: "NL80211_KEY_MODE",
                      10: "NL80211_KEY_DEFAULT_BEACON"}
_NL80211_REKEY_NAMES = {1: "NL80211_REKEY_DATA_KEK", 2: "NL80211_REKEY_DATA_KCK",
                        3: "NL80211_REKEY_DATA_REPLAY_CTR", 4: "NL80211_REKEY_DATA_AKM"}


def _chain(raw, names, secret_types):
    """A small attribute chain: {NAME: value}, secrets redacted, ints by size."""
    raw = bytes(raw)
    out = {}
    off = 0
    while off + 4 <= len(raw):
        hlen, rtype = struct.unpack_from("=HH", raw, off)
        if hlen < 4:
            break
        t = rtype & 0x3FFF
        payload = raw[off + 4:min(off + hlen, len(raw))]
        name = names.get(t, "UNKNOWN_%d" % t)
        if t in secret_types:
            value = redacted(payload)
        elif len(payload) in (1, 2, 4) and name != "NL80211_KEY_CIPHER":
            value = int.from_bytes(payload, "little")
        elif name == "NL80211_KEY_CIPHER" and len(payload) == 4:
            value = "0x%08x" % struct.unpack("=I", payload)[0]
        elif not payload:
            value = True        # a flag
        else:
            value = payload.hex()
        out[name] = value
        off += (hlen + 3) & ~3
    return out


def _nl80211_key(raw):
    return _chain(raw, _NL80211_KEY_NAMES, {1})


def _nl80211_keys(raw):
    raw = bytes(raw)
    out = []
    off = 0
    while off + 4 <= len(raw):
        hlen = struct.unpack_from("=H", raw, off)[0]
        if hlen < 4:
            break
        out.append(_nl80211_key(raw[off + 4:off + hlen]))
        off += (hlen + 3) & ~3
    return out


def _rekey(raw):
    return _chain(raw, _NL80211_REKEY_NAMES, {1, 2})


def _wg_key(raw):
    import base64
    from ..secrets import shown
    if shown():
        return base64.b64encode(bytes(raw)).decode("ascii")
    return redacted(raw)


ATTR_OVERRIDES.update({
    "WGDEVICE_A_PRIVATE_KEY": _wg_key,
    "WGPEER_A_PRESHARED_KEY": _wg_key,
    "MACSEC_SA_ATTR_KEY": redacted,
    "MACSEC_SA_ATTR_SALT": redacted,
    "MACSEC_SA_ATTR_PN": _pn,
    "NL80211_ATTR_KEY_DATA": redacted,
    "NL80211_ATTR_PMK": redacted,
    "NL80211_ATTR_SAE_PASSWORD": redacted,
    "NL80211_ATTR_FILS_KEK": redacted,
    "NL80211_ATTR_FILS_ERP_RRK": redacted,
    "NL80211_ATTR_KEY": _nl80211_key,
    "NL80211_ATTR_KEYS": _nl80211_keys,
    "NL80211_ATTR_REKEY_DATA": _rekey,
})
