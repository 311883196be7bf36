"""Key material in netlink payloads: found by structure, overwritten in the bytes.

nlbpf reads what every process says to the kernel, and some of it is key
material. Unless --show-secrets is given, the bytes of these attributes are
overwritten with zeros as soon as a message reaches userspace (before it is
decoded, printed, or written to a capture file), and the decoder prints them
as "<redacted N bytes>":

    NETLINK_XFRM        XFRMA_ALG_AUTH, XFRMA_ALG_CRYPT, XFRMA_ALG_AEAD,
                        XFRMA_ALG_AUTH_TRUNC: the key after the algorithm name,
                        in every xfrm message type that has a known header
    genl "wireguard"    WGDEVICE_A_PRIVATE_KEY; WGPEER_A_PRESHARED_KEY in each
                        peer of WGDEVICE_A_PEERS
    genl "macsec"       MACSEC_SA_ATTR_KEY and MACSEC_SA_ATTR_SALT in
                        MACSEC_ATTR_SA_CONFIG (and in the SA lists of dumps)
    genl "nl80211"      NL80211_ATTR_KEY_DATA, NL80211_ATTR_PMK,
                        NL80211_ATTR_SAE_PASSWORD, NL80211_ATTR_FILS_KEK,
                        NL80211_ATTR_FILS_ERP_RRK; NL80211_KEY_DATA inside
                        NL80211_ATTR_KEY and each of NL80211_ATTR_KEYS;
                        NL80211_REKEY_DATA_KEK/KCK inside NL80211_ATTR_REKEY_DATA
    genl "ovpn"         OVPN_A_KEYDIR_CIPHER_KEY and OVPN_A_KEYDIR_NONCE_TAIL in both
                        directions of OVPN_A_KEYCONF
    genl "SMBD_GENL"    ksmbd's login response from the password hash on, and its
                        Kerberos (SPNEGO) response from the login's hash on (session key)

An NLMSG_ERROR that echoes a whole failed request (no NETLINK_CAP_ACK) is
walked too: the echo carries the key again. Attribute lengths are bounded by
their container; an attribute cut short by the snap length has what was
captured of it overwritten. Generic netlink families are recognised by name
through the kernel's own family table when live (never through names learned
from the traffic, which a process could forge), through the capture's when
reading a file (a family unknown to it cannot be told apart, see
docs/hardening.md).
"""
import struct
import time

from .decode import GenlFamilies
from .netlink import NETLINK_GENERIC, NETLINK_XFRM, NLMSG_ERROR, SECRET_PROTOCOLS

_HH = struct.Struct("=HH")


class _Secret:
    """The attribute's payload from byte `skip` on is key material."""
    __slots__ = ("skip",)

    def __init__(self, skip=0):
        self.skip = skip


class _Array:
    """A nest whose every element is a nest described by `rules`."""
    __slots__ = ("rules",)

    def __init__(self, rules):
        self.rules = rules


SECRET = _Secret()

# struct xfrm_algo {char alg_name[64]; u32 alg_key_len; char alg_key[];}
# xfrm_algo_auth and xfrm_algo_aead have one more u32 before the key
_XFRM_RULES = {1: _Secret(72), 2: _Secret(68), 18: _Secret(72), 20: _Secret(72)}
# fixed header after nlmsghdr, per xfrm message type (include/uapi/linux/xfrm.h)
XFRM_HEADERS = {0x10: 224, 0x11: 24, 0x12: 24, 0x13: 168, 0x14: 64, 0x15: 64,
                0x16: 232, 0x17: 280, 0x18: 232, 0x19: 168, 0x1a: 224, 0x1b: 176,
                0x1c: 4, 0x1d: 0, 0x1e: 48, 0x1f: 48, 0x20: 64, 0x21: 64}

_MACSEC_SA = {4: SECRET, 9: SECRET}                 # MACSEC_SA_ATTR_KEY, _SALT
_NL80211_KEY = {1: SECRET}                          # NL80211_KEY_DATA
_OVPN_KEYDIR = {1: SECRET, 2: SECRET}               # OVPN_A_KEYDIR_CIPHER_KEY, _NONCE_TAIL
GENL_RULES = {
    "wireguard": {3: SECRET,                        # WGDEVICE_A_PRIVATE_KEY
                  8: _Array({2: SECRET})},          # WGDEVICE_A_PEERS / WGPEER_A_PRESHARED_KEY
    "macsec": {3: _MACSEC_SA,                       # MACSEC_ATTR_SA_CONFIG
               5: _Array(_MACSEC_SA),               # MACSEC_ATTR_TXSA_LIST
               6: _Array({3: _Array(_MACSEC_SA)})},  # MACSEC_ATTR_RXSC_LIST / RXSC_ATTR_SA_LIST
    "nl80211": {7: SECRET,                          # NL80211_ATTR_KEY_DATA
                80: _NL80211_KEY,                   # NL80211_ATTR_KEY
                81: _Array(_NL80211_KEY),           # NL80211_ATTR_KEYS
                122: {1: SECRET, 2: SECRET},        # NL80211_ATTR_REKEY_DATA: KEK, KCK
                242: SECRET,                        # NL80211_ATTR_FILS_KEK
                252: SECRET,                        # NL80211_ATTR_FILS_ERP_RRK
                254: SECRET,                        # NL80211_ATTR_PMK
                277: SECRET},                       # NL80211_ATTR_SAE_PASSWORD
    "ovpn": {3: {5: _OVPN_KEYDIR, 6: _OVPN_KEYDIR}},  # OVPN_A_KEYCONF: ENCRYPT/DECRYPT_DIR
    "SMBD_GENL": {5: _Secret(64),                   # KSMBD_EVENT_LOGIN_RESPONSE: hash on
                  15: _Secret(68)},                 # KSMBD_EVENT_SPNEGO_AUTHEN_RESPONSE
}
GENL_HDRLEN = 4


def _walk(buf, start, end, rules, out, depth=0):
    """Collect (offset, length) of secret bytes in the attribute chain buf[start:end]."""
    off = start
    while off + 4 <= end:
        hlen, rtype = _HH.unpack_from(buf, off)
        if hlen < 4:
            return
        stop = min(off + hlen, end)         # cut by the snap length: what is there
        rule = rules.get(rtype & 0x3FFF)
        if isinstance(rule, _Secret):
            if stop > off + 4 + rule.skip:
                out.append((off + 4 + rule.skip, stop - (off + 4 + rule.skip)))
        elif isinstance(rule, dict) and depth < 8:
            _walk(buf, off + 4, stop, rule, out, depth + 1)
        elif isinstance(rule, _Array) and depth < 8:
            e = off + 4
            while e + 4 <= stop:
                elen = _HH.unpack_from(buf, e)[0]
                if elen < 4:
                    break
                _walk(buf, e + 4, min(e + elen, stop), rule.rules, out, depth + 1)
                e += (elen + 3) & ~3
        off += (hlen + 3) & ~3


def secret_ranges(protocol, data, families=None, _depth=0):
    """(offset, length) of every byte of key material in one message (nlmsghdr at 0).

    families: a GenlFamilies (or {id: name}) for generic netlink. Never raises.
    """
    out = []
    try:
        _ranges(protocol, data, families, out, 0, _depth)
    except Exception:
        pass
    return out


def _family_name(families, type_):
    if families is None:
        return None
    name = getattr(families, "name", None)
    if callable(name):
        return name(type_)
    return families.get(type_) if isinstance(families, dict) else None


def _ranges(protocol, data, families, out, base, depth):
    n = len(data)
    if n < 16:
        return
    length, type_ = struct.unpack_from("=IH", data, 0)
    if length < 16:
        return
    end = min(length, n)
    if type_ == NLMSG_ERROR:
        # the failed request comes back after the errno, nlmsghdr and all
        if depth < 2 and end >= 20 + 16:
            inner = data[20:end]
            sub = []
            _ranges(protocol, inner, families, sub, 0, depth + 1)
            out.extend((base + 20 + o, ln) for o, ln in sub)
        return
    if protocol == NETLINK_XFRM:
        hdr = XFRM_HEADERS.get(type_)
        if hdr is not None:
            sub = []
            _walk(data, 16 + ((hdr + 3) & ~3), end, _XFRM_RULES, sub)
            out.extend((base + o, ln) for o, ln in sub)
    elif protocol == NETLINK_GENERIC and type_ >= 0x10:
        rules = GENL_RULES.get(_family_name(families, type_))
        if rules:
            sub = []
            _walk(data, 16 + GENL_HDRLEN, end, rules, sub)
            out.extend((base + o, ln) for o, ln in sub)


def scrub(protocol, data, families=None):
    """data with every byte of key material overwritten with zeros (the same
    object when there is none)."""
    if protocol not in (NETLINK_XFRM, NETLINK_GENERIC) or len(data) < 16:
        return data
    ranges = secret_ranges(protocol, data, families)
    if not ranges:
        return data
    buf = bytearray(data)
    for off, ln in ranges:
        buf[off:off + ln] = bytes(len(buf[off:off + ln]))
    return bytes(buf)


def scrub_message(msg, families=None):
    """Overwrite a model.Message's key bytes in place (the caller asks unless
    --show-secrets)."""
    data = msg.data
    new = scrub(msg.protocol, data, families)
    if new is not data:
        msg.data = new
    return msg


REFRESH_EVERY_S = 2.0
_last_refresh = [0.0]


def _refresh_live(families):
    """A generic netlink family registered after the table was read (modprobe
    wireguard mid-run): read the kernel's table again, at most every 2 s."""
    now = time.monotonic()
    if now - _last_refresh[0] < REFRESH_EVERY_S:
        return False
    _last_refresh[0] = now
    try:
        for fid, name in GenlFamilies.live().items():
            families.add(fid, name)
    except Exception:
        return False
    return True


_live = []


def live_families():
    """The kernel's own generic netlink family table, read once (then on unknown ids).

    Live captures scrub by this table, never by names learned from the traffic:
    a process may send a CTRL_CMD_NEWFAMILY of its own making (or, with
    CAP_NET_ADMIN in its user namespace, have one delivered to a second socket),
    and must not be able to rename wireguard to keep its keys from being scrubbed.
    """
    if not _live:
        _live.append(GenlFamilies.live())
    return _live[0]


def scrub_live(msg, families=None):
    """scrub_message for the live probes, by the kernel's family table (`families`,
    the decoder's, is not used: see live_families); an unknown generic netlink
    family id makes that table be read again first."""
    if msg.protocol not in SECRET_PROTOCOLS:
        return msg
    table = live_families()
    if msg.protocol == NETLINK_GENERIC and len(msg.data) >= 16:
        type_ = msg.nl_type
        if type_ == NLMSG_ERROR and len(msg.data) >= 36:
            type_ = struct.unpack_from("=H", msg.data, 24)[0]     # the echoed request's
        if type_ is not None and type_ > 0x10 and _family_name(table, type_) is None:
            _refresh_live(table)
    return scrub_message(msg, table)
