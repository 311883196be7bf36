"""Key material is redacted by default in every output, and shown only with --show-secrets.

Byte-exact messages for each family that carries keys (this machine's kernel has
no wireguard, macsec or 802.11 modules, and no ESP for xfrm): built here from
the uapi layouts, checked against pyroute2's/nlbpf's decoders for their names.
"""
import base64
import json
import struct
from types import SimpleNamespace

import pytest

from nlbpf import secrets
from nlbpf.commands.common import Pipeline
from nlbpf.places import live_context
from nlbpf.decode import GenlFamilies, decode
from nlbpf.model import Message, REQUEST, REPLY
from nlbpf.output.records import Decoder, message_record, transaction_record

WG, MACSEC, NL80211, OVPN, SMBD = 0x20, 0x21, 0x22, 0x23, 0x24
FAMILIES = {WG: "wireguard", MACSEC: "macsec", NL80211: "nl80211", OVPN: "ovpn",
            SMBD: "SMBD_GENL"}
NLM_F_REQUEST, NLM_F_ACK = 1, 4


def nla(t, payload, nested=False):
    payload = bytes(payload)
    raw = struct.pack("=HH", 4 + len(payload), t | (0x8000 if nested else 0)) + payload
    return raw + bytes((4 - len(raw) % 4) % 4)


def nlmsg(type_, payload, flags=NLM_F_REQUEST | NLM_F_ACK, seq=7, portid=0):
    return struct.pack("=IHHII", 16 + len(payload), type_, flags, seq, portid) + payload


def genl(family, cmd, attrs, **kw):
    return nlmsg(family, bytes((cmd, 1, 0, 0)) + b"".join(attrs), **kw)


def key(byte, n):
    return bytes([byte]) * n


# --- the messages: (protocol, bytes, [secret byte strings]) --------------------------

def wireguard_set_device():
    priv, psk, pub = key(0xA1, 32), key(0xA2, 32), key(0x5B, 32)
    peer = nla(0, nla(1, pub) + nla(2, psk) + nla(5, struct.pack("=H", 25)), nested=True)
    msg = genl(WG, 1, [nla(2, b"wg0\0"), nla(3, priv), nla(6, struct.pack("=H", 51820)),
                       nla(8, peer, nested=True)])
    return 16, msg, [priv, psk], pub


def macsec_add_rxsa():
    k, salt = key(0xB1, 16), key(0xB2, 12)
    sa = nla(1, b"\x01") + nla(2, b"\x01") + nla(3, struct.pack("=I", 1)) + nla(4, k) + \
        nla(5, key(0x11, 16)) + nla(8, struct.pack("=I", 9)) + nla(9, salt)
    msg = genl(MACSEC, 7, [nla(1, struct.pack("=I", 5)),
                           nla(2, nla(1, struct.pack(">Q", 0x1122334455660001)), nested=True),
                           nla(3, sa, nested=True)])
    return 16, msg, [k, salt], None


def nl80211_new_key():
    k1, k2, pmk, sae = key(0xC1, 16), key(0xC2, 32), key(0xC3, 32), b"correct horse battery"
    keynest = nla(1, k2) + nla(2, b"\x01") + nla(3, struct.pack("=I", 0x000FAC04))
    keys = nla(0, nla(1, key(0xC4, 13)) + nla(2, b"\x00"), nested=True)
    rekey = nla(1, key(0xC5, 16)) + nla(2, key(0xC6, 16)) + nla(3, bytes(8))
    msg = genl(NL80211, 11, [nla(3, struct.pack("=I", 3)), nla(7, k1), nla(8, b"\x00"),
                             nla(9, struct.pack("=I", 0x000FAC04)), nla(80, keynest, nested=True),
                             nla(81, keys, nested=True), nla(122, rekey, nested=True),
                             nla(254, pmk), nla(277, sae)])
    return 16, msg, [k1, k2, key(0xC4, 13), key(0xC5, 16), key(0xC6, 16), pmk, sae], None


def xfrm_newsa():
    enc, auth, aead = key(0xD1, 16), key(0xD2, 32), key(0xD3, 20)
    info = bytearray(224)
    struct.pack_into("=H", info, 212, 2)                    # family AF_INET
    algo = lambda name, k, extra=b"": (name.ljust(64, b"\0") + struct.pack("=I", len(k) * 8)
                                       + extra + k)
    attrs = (nla(2, algo(b"cbc(aes)", enc)) + nla(20, algo(b"hmac(sha256)", auth,
                                                              struct.pack("=I", 128)))
             + nla(18, algo(b"rfc4106(gcm(aes))", aead, struct.pack("=I", 128))))
    return 6, nlmsg(0x10, bytes(info) + attrs, flags=NLM_F_REQUEST | NLM_F_ACK | 0x600), \
        [enc, auth, aead], None


def ovpn_key_new():
    enc, enc_nonce, dec, dec_nonce = key(0xE1, 32), key(0xE2, 8), key(0xE3, 32), key(0xE4, 8)
    keyconf = (nla(1, struct.pack("=I", 7)) + nla(2, struct.pack("=I", 0))
               + nla(3, struct.pack("=I", 1)) + nla(4, struct.pack("=I", 1))
               + nla(5, nla(1, enc) + nla(2, enc_nonce), nested=True)
               + nla(6, nla(1, dec) + nla(2, dec_nonce), nested=True))
    msg = genl(OVPN, 6, [nla(1, struct.pack("=I", 4)), nla(3, keyconf, nested=True)])
    return 16, msg, [enc, enc_nonce, dec, dec_nonce], None


def ksmbd_login_response():
    pw_hash = key(0xF1, 16) + b"\x2a\x2b"             # NT hash (the struct has room for 18)
    body = (struct.pack("=III", 9, 1000, 1000) + b"alice".ljust(48, b"\0")
            + struct.pack("=HH", 1, 16) + pw_hash + bytes(2) + bytes(64))
    msg = genl(SMBD, 5, [nla(5, body)])
    return 16, msg, [pw_hash], b"alice"


MESSAGES = {"wireguard": wireguard_set_device, "macsec": macsec_add_rxsa,
            "nl80211": nl80211_new_key, "xfrm": xfrm_newsa, "ovpn": ovpn_key_new,
            "ksmbd": ksmbd_login_response}


def error_echo(protocol, request, errno=22):
    """The NLMSG_ERROR a socket without NETLINK_CAP_ACK gets: the whole request echoed."""
    return protocol, nlmsg(2, struct.pack("=i", -errno) + request, flags=0, seq=7)


def leaks(text, keys):
    """Which keys appear in text: raw hex, base64, or the text itself."""
    found = []
    for k in keys:
        forms = [k.hex(), base64.b64encode(k).decode()]
        if all(32 <= b < 127 for b in k):
            forms.append(k.decode())
        if any(f in text for f in forms):
            found.append(k)
    return found


def all_outputs(protocol, data, families=FAMILIES):
    """Everything nlbpf prints for this message: decoded JSON, summary, trace and errors records."""
    fams = GenlFamilies(families)
    d = decode(protocol, data, fams)
    req = Message(ts_ns=1, pid=1, tid=1, comm="t", protocol=protocol, direction=REQUEST,
                  data=data, length=len(data), sock=1)
    secrets.scrub_message(req, fams)
    from nlbpf.correlate import Correlator
    c = Correlator()
    txn, _ = c.feed(req)
    dec = Decoder(families=fams)
    recs = [message_record(req, txn, False, dec, 0, live_context())]
    ack = Message(ts_ns=2, pid=1, tid=1, comm="t", protocol=protocol, direction=REPLY,
                  data=nlmsg(2, struct.pack("=i", -22) + data[:16], flags=0x100),
                  length=36, sock=1)
    txn, done = c.feed(ack)
    assert done
    recs.append(transaction_record(txn, dec, 0, live_context()))
    return json.dumps(d.to_json()) + d.summary() + json.dumps(recs, default=str)


@pytest.mark.parametrize("family", sorted(MESSAGES))
def test_keys_are_overwritten_in_the_bytes(family):
    protocol, data, keys, public = MESSAGES[family]()
    out = secrets.scrub(protocol, data, GenlFamilies(FAMILIES))
    assert len(out) == len(data)
    assert not leaks(out.hex(), keys)
    # only key bytes changed: as many as the keys hold
    changed = sum(a != b for a, b in zip(out, data))
    assert changed == sum(len(k) for k in keys)
    if public:
        assert public in out          # public keys are not secrets


@pytest.mark.parametrize("family", sorted(MESSAGES))
def test_decoded_views_redact_by_default(family):
    protocol, data, keys, _ = MESSAGES[family]()
    text = all_outputs(protocol, data)
    assert not leaks(text, keys), text
    assert "<redacted" in text
    # the decoder redacts on its own too (bytes not scrubbed: a capture file made with
    # --show-secrets, read back without it)
    d = decode(protocol, data, GenlFamilies(FAMILIES))
    assert not leaks(json.dumps(d.to_json()), keys)
    assert not d.malformed


@pytest.mark.parametrize("family", sorted(MESSAGES))
def test_error_echo_of_the_request_is_redacted(family):
    protocol, data, keys, _ = MESSAGES[family]()
    protocol, err = error_echo(protocol, data)
    assert leaks(err.hex(), keys)
    out = secrets.scrub(protocol, err, GenlFamilies(FAMILIES))
    assert not leaks(out.hex(), keys)
    d = decode(protocol, err, GenlFamilies(FAMILIES))
    assert not leaks(json.dumps(d.to_json()), keys)


@pytest.mark.parametrize("family", sorted(MESSAGES))
def test_cut_short_by_the_snap_length_still_redacted(family):
    protocol, data, keys, _ = MESSAGES[family]()
    fams = GenlFamilies(FAMILIES)
    for snap in range(16, len(data), 3):
        cut = data[:snap]
        out = secrets.scrub(protocol, cut, fams)
        line = decode(protocol, cut, fams).summary() or ""
        assert "b'" not in line and "None" not in line, (snap, line)     # '?' or hex instead
        for k in keys:
            # no 4-byte run of any key survives
            assert not any(k[i:i + 4] in out for i in range(0, len(k) - 3)), (snap, k)


@pytest.mark.parametrize("family", sorted(MESSAGES))
def test_show_secrets_keeps_them(family):
    """--show-secrets: through the real Pipeline, the bytes are not scrubbed and the
    decoded record shows every key."""
    protocol, data, keys, _ = MESSAGES[family]()
    pipe = Pipeline(as_json=True, show_secrets=True)
    pipe.decoder = Decoder(families=GenlFamilies(FAMILIES), show_secrets=True)
    pipe.source = SimpleNamespace(live=False)   # not live: no family refresh from the kernel
    out = []
    pipe.on_message = lambda msg, txn, completed: out.append(
        json.dumps(message_record(msg, txn, completed, pipe.decoder, 0, pipe.context)))
    msg = Message(0, 1, 1, "t", protocol, REQUEST, data, len(data))
    pipe.feed(msg)
    assert msg.data == data
    assert sorted(leaks(out[0], keys)) == sorted(keys)
    assert "<redacted" not in out[0]
    # without it, the same decoding says only how long each key was
    assert not leaks(json.dumps(decode(protocol, data, GenlFamilies(FAMILIES)).to_json()), keys)


def test_names_of_the_redacted_attributes():
    d = decode(*MESSAGES["wireguard"]()[:2], GenlFamilies(FAMILIES))
    assert d.type_name == "wireguard.WG_CMD_SET_DEVICE"
    assert d.attrs["WGDEVICE_A_PRIVATE_KEY"] == "<redacted 32 bytes>"
    peer = d.attrs["WGDEVICE_A_PEERS"][0]
    assert peer["WGPEER_A_PRESHARED_KEY"] == "<redacted 32 bytes>"
    d = decode(*MESSAGES["macsec"]()[:2], GenlFamilies(FAMILIES))
    assert d.type_name == "macsec.MACSEC_CMD_ADD_RXSA"
    sa = d.attrs["MACSEC_ATTR_SA_CONFIG"]
    assert sa["MACSEC_SA_ATTR_KEY"] == "<redacted 16 bytes>"
    assert sa["MACSEC_SA_ATTR_SALT"] == "<redacted 12 bytes>"
    assert sa["MACSEC_SA_ATTR_KEYID"] == "11" * 16 and sa["MACSEC_SA_ATTR_PN"] == 1
    d = decode(*MESSAGES["nl80211"]()[:2], GenlFamilies(FAMILIES))
    assert d.type_name == "nl80211.NL80211_CMD_NEW_KEY"
    assert d.attrs["NL80211_ATTR_KEY_DATA"] == "<redacted 16 bytes>"
    assert d.attrs["NL80211_ATTR_KEY"] == {"NL80211_KEY_DATA": "<redacted 32 bytes>",
                                           "NL80211_KEY_IDX": 1,
                                           "NL80211_KEY_CIPHER": "0x000fac04"}
    assert d.attrs["NL80211_ATTR_KEYS"][0]["NL80211_KEY_DATA"] == "<redacted 13 bytes>"
    assert d.attrs["NL80211_ATTR_REKEY_DATA"]["NL80211_REKEY_DATA_KCK"] == "<redacted 16 bytes>"
    assert d.attrs["NL80211_ATTR_PMK"] == "<redacted 32 bytes>"
    assert d.attrs["NL80211_ATTR_SAE_PASSWORD"] == "<redacted 21 bytes>"
    d = decode(*MESSAGES["xfrm"]()[:2])
    assert d.attrs["XFRMA_ALG_CRYPT"]["alg_name"] == "cbc(aes)"
    assert d.attrs["XFRMA_ALG_CRYPT"]["alg_key"] == "<redacted 16 bytes>"
    assert d.attrs["XFRMA_ALG_AUTH_TRUNC"]["alg_key"] == "<redacted 32 bytes>"
    assert d.attrs["XFRMA_ALG_AEAD"]["alg_key"] == "<redacted 20 bytes>"


def test_other_traffic_is_untouched():
    route = nlmsg(24, bytes(12) + nla(1, bytes((10, 0, 0, 1))))
    assert secrets.scrub(0, route) is route
    other_genl = genl(0x30, 1, [nla(3, key(0xEE, 32))])     # family 0x30 is not a keyed one
    assert secrets.scrub(16, other_genl, GenlFamilies(FAMILIES)) is other_genl


def test_pipeline_prints_no_key(capsys):
    """trace --json through the real Pipeline: the message is scrubbed before it is decoded."""
    protocol, data, keys, _ = MESSAGES["wireguard"]()

    pipe = Pipeline(as_json=True)
    pipe.decoder = Decoder(families=GenlFamilies(FAMILIES))

    def on_message(msg, txn, completed):
        pipe.printer(message_record(msg, txn, completed, pipe.decoder, pipe.offset_ns, pipe.context))
    pipe.on_message = on_message
    pipe.source = SimpleNamespace(live=False)   # not live: no family refresh from the kernel
    msg = Message(ts_ns=1, pid=1, tid=1, comm="wg", protocol=protocol, direction=REQUEST,
                  data=data, length=len(data), sock=9)
    pipe.feed(msg)
    pipe.feed(Message(ts_ns=2, pid=1, tid=1, comm="wg", protocol=protocol, direction=REPLY,
                      data=error_echo(protocol, data)[1], length=len(data) + 20, sock=9))
    out = capsys.readouterr().out
    assert out.count("\n") == 2
    assert not leaks(out, keys) and "<redacted 32 bytes>" in out
    assert not leaks(msg.data.hex(), keys)      # the record itself holds no key any more


def test_show_secrets_is_a_capture_option():
    from click.testing import CliRunner
    from nlbpf.cli import cli
    r = CliRunner().invoke(cli, ["trace", "--help"])
    assert "--show-secrets" in r.output
    assert "--buffer-pages" not in r.output        # hidden: for tests


def test_a_forged_family_name_cannot_hide_keys(monkeypatch):
    """A process sends its own CTRL_CMD_NEWFAMILY saying the wireguard id is "foo": live
    captures scrub by the kernel's family table, not by what the traffic claims."""
    protocol, data, keys, _ = MESSAGES["wireguard"]()
    monkeypatch.setattr(secrets, "_live", [GenlFamilies(FAMILIES)])
    forged = nlmsg(16, bytes((1, 2, 0, 0)) + nla(1, struct.pack("=H", WG)) + nla(2, b"foo\0"),
                   flags=0)
    pipe = Pipeline(as_json=True)
    pipe.decoder = Decoder(families=GenlFamilies(FAMILIES))
    seen = []
    pipe.on_message = lambda msg, txn, completed: seen.append(
        json.dumps(message_record(msg, txn, completed, pipe.decoder, 0, pipe.context)))
    for direction, raw in ((REQUEST, forged), (REPLY, forged), (REQUEST, data),
                           (REPLY, error_echo(protocol, data)[1])):
        pipe.feed(Message(ts_ns=1, pid=1, tid=1, comm="evil", protocol=16, direction=direction,
                          data=raw, length=len(raw), sock=3))
    assert pipe.decoder.families.name(WG) == "foo"        # the display table was fooled...
    assert not leaks("".join(seen), keys)                   # ...the scrubber was not


def test_ksmbd_kerberos_session_key_is_redacted():
    session_key, pw_hash = key(0xF5, 16), key(0xF6, 18)
    login = (struct.pack("=III", 9, 1000, 1000) + b"bob".ljust(48, b"\0")
             + struct.pack("=HH", 1, 18) + pw_hash + bytes(2) + bytes(64))
    body = struct.pack("=I", 9) + login + struct.pack("=HH", 16, 4) + session_key + b"\x6f\x81"
    data = genl(SMBD, 15, [nla(15, body)], flags=0)
    fams = GenlFamilies(FAMILIES)
    out = secrets.scrub(16, data, fams)
    assert not leaks(out.hex(), [session_key, pw_hash])
    assert b"bob" in out
    d = decode(16, data, fams)
    text = json.dumps(d.to_json())
    assert not leaks(text, [session_key, pw_hash]) and "<redacted" in text
    assert d.type_name == "SMBD_GENL.KSMBD_EVENT_SPNEGO_AUTHEN_RESPONSE"


def test_ovpn_attributes_have_names():
    d = decode(*MESSAGES["ovpn"]()[:2], GenlFamilies(FAMILIES))
    assert d.type_name == "ovpn.OVPN_CMD_KEY_NEW"
    conf = d.attrs["OVPN_A_KEYCONF"]
    assert conf["OVPN_A_KEYCONF_PEER_ID"] == 7
    assert conf["OVPN_A_KEYCONF_ENCRYPT_DIR"]["OVPN_A_KEYDIR_CIPHER_KEY"] == "<redacted 32 bytes>"
    assert conf["OVPN_A_KEYCONF_DECRYPT_DIR"]["OVPN_A_KEYDIR_NONCE_TAIL"] == "<redacted 8 bytes>"
