"""Attributes that carry key material, decoded with the key redacted.

nlbpf/secrets.py overwrites these bytes before anything is decoded (unless
--show-secrets); the decoders here give each key as a Secret (secret.py), which
the output shows as "<redacted 32 bytes>", or with --show-secrets in hex.

Also the generic netlink families pyroute2 has no class for, so that their
attributes have names: "macsec" (include/uapi/linux/if_macsec.h), "ovpn"
(include/uapi/linux/ovpn.h) and ksmbd's "SMBD_GENL" (fs/smb/server/ksmbd_netlink.h).
"""
import struct

from pyroute2.netlink import genlmsg, nla

from .engine import ATTR_OVERRIDES
from .secret import Secret as redacted

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


# -- OpenVPN data channel offload (genl "ovpn") -------------------------------------
OVPN_CMD_PEER_NEW = 1
OVPN_CMD_PEER_SET = 2
OVPN_CMD_PEER_GET = 3
OVPN_CMD_PEER_DEL = 4
OVPN_CMD_PEER_DEL_NTF = 5
OVPN_CMD_KEY_NEW = 6
OVPN_CMD_KEY_GET = 7
OVPN_CMD_KEY_SWAP = 8
OVPN_CMD_KEY_SWAP_NTF = 9
OVPN_CMD_KEY_DEL = 10
OVPN_CMD_PEER_FLOAT_NTF = 11


class ovpn_msg(genlmsg):
    prefix = "OVPN_A_"
    nla_map = (
        ("OVPN_A_UNSPEC", "none"),
        ("OVPN_A_IFINDEX", "uint32"),
        ("OVPN_A_PEER", "peer"),
        ("OVPN_A_KEYCONF", "keyconf"),
    )

    class peer(nla):
        prefix = "OVPN_A_PEER_"
        nla_map = (
            ("OVPN_A_PEER_UNSPEC", "none"),
            ("OVPN_A_PEER_ID", "uint32"),
            ("OVPN_A_PEER_REMOTE_IPV4", "ip4addr"),
            ("OVPN_A_PEER_REMOTE_IPV6", "ip6addr"),
            ("OVPN_A_PEER_REMOTE_IPV6_SCOPE_ID", "uint32"),
            ("OVPN_A_PEER_REMOTE_PORT", "be16"),
            ("OVPN_A_PEER_SOCKET", "uint32"),
            ("OVPN_A_PEER_SOCKET_NETNSID", "int32"),
            ("OVPN_A_PEER_VPN_IPV4", "ip4addr"),
            ("OVPN_A_PEER_VPN_IPV6", "ip6addr"),
            ("OVPN_A_PEER_LOCAL_IPV4", "ip4addr"),
            ("OVPN_A_PEER_LOCAL_IPV6", "ip6addr"),
            ("OVPN_A_PEER_LOCAL_PORT", "be16"),
            ("OVPN_A_PEER_KEEPALIVE_INTERVAL", "uint32"),
            ("OVPN_A_PEER_KEEPALIVE_TIMEOUT", "uint32"),
            ("OVPN_A_PEER_DEL_REASON", "uint32"),
            ("OVPN_A_PEER_VPN_RX_BYTES", "hex"),
            ("OVPN_A_PEER_VPN_TX_BYTES", "hex"),
            ("OVPN_A_PEER_VPN_RX_PACKETS", "hex"),
            ("OVPN_A_PEER_VPN_TX_PACKETS", "hex"),
            ("OVPN_A_PEER_LINK_RX_BYTES", "hex"),
            ("OVPN_A_PEER_LINK_TX_BYTES", "hex"),
            ("OVPN_A_PEER_LINK_RX_PACKETS", "hex"),
            ("OVPN_A_PEER_LINK_TX_PACKETS", "hex"),
            ("OVPN_A_PEER_TX_ID", "uint32"),
        )

    class keyconf(nla):
        prefix = "OVPN_A_KEYCONF_"
        nla_map = (
            ("OVPN_A_KEYCONF_UNSPEC", "none"),
            ("OVPN_A_KEYCONF_PEER_ID", "uint32"),
            ("OVPN_A_KEYCONF_SLOT", "uint32"),
            ("OVPN_A_KEYCONF_KEY_ID", "uint32"),
            ("OVPN_A_KEYCONF_CIPHER_ALG", "uint32"),
            ("OVPN_A_KEYCONF_ENCRYPT_DIR", "keydir"),
            ("OVPN_A_KEYCONF_DECRYPT_DIR", "keydir"),
        )

        class keydir(nla):
            prefix = "OVPN_A_KEYDIR_"
            nla_map = (
                ("OVPN_A_KEYDIR_UNSPEC", "none"),
                ("OVPN_A_KEYDIR_CIPHER_KEY", "hex"),
                ("OVPN_A_KEYDIR_NONCE_TAIL", "hex"),
            )


def _uint(raw):
    """YNL's variable-size uint (4 or 8 bytes)."""
    return int.from_bytes(bytes(raw), "little") if len(raw) in (4, 8) else bytes(raw).hex()


# -- ksmbd (genl "SMBD_GENL"): one attribute per event, a fixed struct in each ------
KSMBD_EVENT_HEARTBEAT_REQUEST = 1
KSMBD_EVENT_STARTING_UP = 2
KSMBD_EVENT_SHUTTING_DOWN = 3
KSMBD_EVENT_LOGIN_REQUEST = 4
KSMBD_EVENT_LOGIN_RESPONSE = 5
KSMBD_EVENT_SHARE_CONFIG_REQUEST = 6
KSMBD_EVENT_SHARE_CONFIG_RESPONSE = 7
KSMBD_EVENT_TREE_CONNECT_REQUEST = 8
KSMBD_EVENT_TREE_CONNECT_RESPONSE = 9
KSMBD_EVENT_TREE_DISCONNECT_REQUEST = 10
KSMBD_EVENT_LOGOUT_REQUEST = 11
KSMBD_EVENT_RPC_REQUEST = 12
KSMBD_EVENT_RPC_RESPONSE = 13
KSMBD_EVENT_SPNEGO_AUTHEN_REQUEST = 14
KSMBD_EVENT_SPNEGO_AUTHEN_RESPONSE = 15
KSMBD_EVENT_LOGIN_REQUEST_EXT = 16
KSMBD_EVENT_LOGIN_RESPONSE_EXT = 17
# struct ksmbd_login_response: handle, gid, uid, account[48], status, hash_sz, hash[18]
KSMBD_LOGIN_HASH = 64
# struct ksmbd_spnego_authen_response: handle, then a login response, then the session key
KSMBD_SPNEGO_SECRET = 4 + KSMBD_LOGIN_HASH


class smbd_msg(genlmsg):
    prefix = "KSMBD_EVENT_"
    nla_map = tuple((name, "hex") for name in (
        "KSMBD_EVENT_UNSPEC", "KSMBD_EVENT_HEARTBEAT_REQUEST", "KSMBD_EVENT_STARTING_UP",
        "KSMBD_EVENT_SHUTTING_DOWN", "KSMBD_EVENT_LOGIN_REQUEST", "KSMBD_EVENT_LOGIN_RESPONSE",
        "KSMBD_EVENT_SHARE_CONFIG_REQUEST", "KSMBD_EVENT_SHARE_CONFIG_RESPONSE",
        "KSMBD_EVENT_TREE_CONNECT_REQUEST", "KSMBD_EVENT_TREE_CONNECT_RESPONSE",
        "KSMBD_EVENT_TREE_DISCONNECT_REQUEST", "KSMBD_EVENT_LOGOUT_REQUEST",
        "KSMBD_EVENT_RPC_REQUEST", "KSMBD_EVENT_RPC_RESPONSE",
        "KSMBD_EVENT_SPNEGO_AUTHEN_REQUEST", "KSMBD_EVENT_SPNEGO_AUTHEN_RESPONSE",
        "KSMBD_EVENT_LOGIN_REQUEST_EXT", "KSMBD_EVENT_LOGIN_RESPONSE_EXT"))


def _ksmbd_after(skip):
    """A struct whose bytes from `skip` on hold a password hash or session key."""
    def show(raw):
        raw = bytes(raw)
        if len(raw) <= skip:
            return raw.hex()
        return {"head": raw[:skip].hex(), "secret": redacted(raw[skip:])}
    return show


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
    return redacted(raw, b64=True)      # as `wg` prints keys


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
    "OVPN_A_KEYDIR_CIPHER_KEY": redacted,
    "OVPN_A_KEYDIR_NONCE_TAIL": redacted,
    "KSMBD_EVENT_LOGIN_RESPONSE": _ksmbd_after(KSMBD_LOGIN_HASH),
    "KSMBD_EVENT_SPNEGO_AUTHEN_RESPONSE": _ksmbd_after(KSMBD_SPNEGO_SECRET),
})
ATTR_OVERRIDES.update({"OVPN_A_PEER_" + what: _uint for what in (
    "VPN_RX_BYTES", "VPN_TX_BYTES", "VPN_RX_PACKETS", "VPN_TX_PACKETS",
    "LINK_RX_BYTES", "LINK_TX_BYTES", "LINK_RX_PACKETS", "LINK_TX_PACKETS")})
