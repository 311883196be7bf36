"""GenlFamilies: live lookup, learning from captures, command names."""
import base64
import socket
import struct
import sys

from tests.helpers import nlfixtures

from nlbpf.decode import GenlFamilies, decode
from nlbpf.decode.genl import command_name


def rta(t, payload, nested=False):
    n = 4 + len(payload)
    return struct.pack("=HH", n, t | (0x8000 if nested else 0)) + payload + \
        b"\0" * ((-n) % 4)


def genl(fid, cmd, flags, body, version=1):
    b = bytes([cmd, version, 0, 0]) + body
    return struct.pack("=IHHII", 16 + len(b), fid, flags, 7, 0) + b


def test_static_knowledge():
    f = GenlFamilies()
    assert f.name(16) == "nlctrl" and f.id("nlctrl") == 16
    assert f.name(0x1d) is None and len(f) == 1
    assert command_name("nlctrl", 3) == "CTRL_CMD_GETFAMILY"
    assert command_name("nlctrl", 10) == "CTRL_CMD_GETPOLICY"
    assert command_name("wireguard", 0) == "WG_CMD_GET_DEVICE"
    assert command_name("wireguard", 1) == "WG_CMD_SET_DEVICE"
    assert command_name("nl80211", 1) == "NL80211_CMD_GET_WIPHY"
    assert command_name("nl80211", 15) == "NL80211_CMD_START_AP"   # not the alias
    assert command_name("nl80211", 33) == "NL80211_CMD_TRIGGER_SCAN"
    assert command_name("devlink", 1) == "DEVLINK_CMD_GET"
    assert command_name("TASKSTATS", 1) == "TASKSTATS_CMD_GET"
    assert command_name("mptcp_pm", 3) == "MPTCP_PM_CMD_GET_ADDR"
    assert command_name("IPVS", 4) == "IPVS_CMD_GET_SERVICE"
    assert command_name("thermal", 1) == "THERMAL_GENL_CMD_TZ_GET_ID"
    assert command_name("ethtool", 2) == "ETHTOOL_MSG_LINKINFO_GET"
    assert command_name("ethtool", 2, request=False) == "ETHTOOL_MSG_LINKINFO_GET_REPLY"
    assert command_name("ethtool", 3, request=False) == "ETHTOOL_MSG_LINKINFO_NTF"
    assert command_name("ethtool", 31) == "ETHTOOL_MSG_MODULE_EEPROM_GET"
    assert command_name("ethtool", 200) == "cmd 200"
    assert command_name("no_such_family", 7) == "cmd 7"
    assert command_name(None, 7) == "cmd 7"


def test_live_asks_the_kernel_or_returns_what_it_knows():
    f = GenlFamilies.live()
    assert f.name(16) == "nlctrl"
    if sys.platform.startswith("linux"):
        # every Linux kernel registers some families besides nlctrl
        assert len(f) > 1
        for fid, name in f.items():
            assert f.id(name) == fid


def test_live_never_raises(monkeypatch):
    import pyroute2.netlink.nlsocket as nlsocket

    def boom(*a, **kw):
        raise PermissionError("no netlink for you")
    monkeypatch.setattr(nlsocket, "NetlinkSocket", boom)
    monkeypatch.setattr(socket, "socket", boom)
    f = GenlFamilies.live()
    assert f.items() == [(16, "nlctrl")]


def test_decoding_learns_from_capture_bytes():
    f = GenlFamilies()
    msgs = nlfixtures.capture("genl_ctrl_dump")
    taught = [decode(16, data, f)._taught for _d, _p, data in msgs]
    assert taught == [False] + [True] * 8 + [False]   # request, 8 replies, DONE
    assert f.name(0x15) == "ethtool" and f.name(0x14) == "netdev"
    assert f.version("ethtool") == 1
    assert decode(16, b"garbage", f)._taught is False
    assert f.feed(None) is False
    assert f.feed(decode(0, nlfixtures.capture("route_get")[1][2], f)) is False


def test_feed_accepts_decoded_and_handles_delfamily():
    f = GenlFamilies()
    new = genl(16, 1, 0, rta(2, b"wireguard\0") + rta(1, struct.pack("=H", 0x22)))
    d = decode(16, new)                 # no families passed: nothing learned
    assert f.feed(d) is True and f.name(0x22) == "wireguard"
    gone = genl(16, 2, 0, rta(2, b"wireguard\0") + rta(1, struct.pack("=H", 0x22)))
    assert f.feed(decode(16, gone)) is True and f.name(0x22) is None
    assert f.id("wireguard") is None


def test_decode_with_learned_family_names_commands_and_payload():
    fams = GenlFamilies()
    lookup_reply = genl(16, 1, 0, rta(2, b"wireguard\0") +
                        rta(1, struct.pack("=H", 0x1d)))
    decode(16, lookup_reply, fams)           # decode() feeds the registry
    assert fams.name(0x1d) == "wireguard"
    req = genl(0x1d, 0, 0x301, rta(2, b"wg0\0"))
    d = decode(16, req, fams)
    assert d.type_name == "wireguard.WG_CMD_GET_DEVICE"
    assert d.family == "wireguard" and d.cmd == 0
    assert d.flag_names == ["NLM_F_REQUEST", "NLM_F_DUMP"]
    assert d.attrs == {"WGDEVICE_A_IFNAME": "wg0"}
    assert d.summary() == "family wireguard cmd WG_CMD_GET_DEVICE WGDEVICE_A_IFNAME=wg0"
    # unknown to an empty registry: id and command number only, payload kept
    bare = decode(16, req)
    assert bare.type_name == "0x1d.cmd 0"
    assert bare.attrs == {"UNKNOWN_2": "77673000"}


def test_wireguard_device_reply():
    pub = bytes(range(32))
    allowed = rta(1, rta(1, struct.pack("=H", 2)) +
                  rta(2, socket.inet_aton("192.0.2.0")) + rta(3, bytes([24])), True)
    endpoint = struct.pack("=H", 2) + struct.pack(">H", 51820) + \
        socket.inet_aton("192.0.2.1") + bytes(8)
    peer = rta(1, rta(1, pub) + rta(4, endpoint) + rta(5, struct.pack("=H", 25)) +
               rta(9, allowed, True), True)
    rep = genl(0x1d, 0, 2, rta(1, struct.pack("=I", 7)) + rta(2, b"wg0\0") +
               rta(3, b"\x42" * 32) + rta(4, pub) +
               rta(6, struct.pack("=H", 51820)) + rta(8, peer, True))
    d = decode(16, rep, GenlFamilies({0x1d: "wireguard"}))
    a = d.attrs
    assert d.malformed is None
    assert a["WGDEVICE_A_IFINDEX"] == 7 and a["WGDEVICE_A_LISTEN_PORT"] == 51820
    assert a["WGDEVICE_A_PRIVATE_KEY"] == "<redacted 32 bytes>"
    assert "42424242" not in str(d.to_json())
    assert a["WGDEVICE_A_PUBLIC_KEY"] == base64.b64encode(pub).decode()
    (p,) = a["WGDEVICE_A_PEERS"]
    assert p["WGPEER_A_ENDPOINT"] == {"family": 2, "port": 51820,
                                      "addr": "192.0.2.1"}
    assert p["WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL"] == 25
    (ip,) = p["WGPEER_A_ALLOWEDIPS"]
    assert ip["WGALLOWEDIP_A_IPADDR"] == "192.0.2.0"
    assert ip["WGALLOWEDIP_A_CIDR_MASK"] == 24
    assert ip["addr"] == "192.0.2.0/24"


def test_ctrl_summaries():
    fams = GenlFamilies()
    msgs = [decode(p, b, fams) for _d, p, b in nlfixtures.capture("genl_ctrl_dump")]
    assert msgs[0].summary() == "family nlctrl cmd CTRL_CMD_GETFAMILY (dump)"
    assert msgs[1].summary() == "family nlctrl id 16 version 2 ops 2 groups notify"
