"""decode() never raises, never hangs, and says what is wrong.

Cut captures (snaplen), garbage, lying length fields, runaway nesting and
the pyroute2 code paths that loop or raise on bad input.
"""
import json
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import nlfixtures

from nlbpf.decode import Decoded, GenlFamilies, decode
from nlbpf.decode.engine import MAX_DEPTH, fields_size, scan_chain

ALL = nlfixtures.all_messages()
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def hdr(length, mtype, flags=0, seq=1, pid=0):
    return struct.pack("=IHHII", length, mtype, flags, seq, pid)


def rta(t, payload, nested=False):
    n = 4 + len(payload)
    return struct.pack("=HH", n, t | (0x8000 if nested else 0)) + payload + \
        b"\0" * ((-n) % 4)


def msg(mtype, body, flags=1, seq=1):
    return hdr(16 + len(body), mtype, flags, seq) + body


RTMSG_V4 = bytes([2, 24, 0, 0, 254, 3, 0, 1]) + struct.pack("=I", 0)


def check_plain(d):
    assert isinstance(d, Decoded)
    j = d.to_json()
    assert json.loads(json.dumps(j)) == j
    assert isinstance(d.summary(), str)
    assert isinstance(d.flag_names, list)


# -- the length field ------------------------------------------------------------
def test_empty_and_tiny_inputs():
    for data in (b"", b"\x01", b"\x10\x00\x00", b"\x24\x00\x00\x00\x1a\x00"):
        d = decode(0, data)
        check_plain(d)
        assert d.truncated and d.malformed is None
    d = decode(0, b"\x24\x00\x00\x00\x1a\x00\x01\x00")
    assert d.length == 36 and d.type_name == "RTM_GETROUTE"
    assert d.flag_names == ["NLM_F_REQUEST"] and d.truncated
    assert decode(0, b"").length is None


def test_nlmsg_len_zero():
    d = decode(0, hdr(0, 24) + RTMSG_V4)
    assert d.malformed == "nlmsg_len is 0"
    assert d.type_name == "RTM_NEWROUTE" and not d.truncated
    assert d.attrs == {}
    check_plain(d)


def test_nlmsg_len_below_header():
    d = decode(0, hdr(8, 24) + RTMSG_V4)
    assert d.malformed == "nlmsg_len 8 < 16"
    assert d.length == 8 and d.type_name == "RTM_NEWROUTE"
    d = decode(0, hdr(12, 2)[:12])
    assert d.malformed == "nlmsg_len 12 < 16"


def test_nlmsg_len_past_the_buffer_is_truncation():
    body = RTMSG_V4 + rta(1, bytes([10, 0, 0, 0])) + rta(5, bytes([10, 0, 0, 1]))
    d = decode(0, hdr(16 + len(body) + 400, 24) + body)
    assert d.truncated and d.malformed is None
    assert d.length == 16 + len(body) + 400
    assert d.attrs == {"RTA_DST": "10.0.0.0", "RTA_GATEWAY": "10.0.0.1"}


def test_bytes_after_nlmsg_len_are_not_part_of_the_message():
    body = RTMSG_V4 + rta(1, bytes([10, 0, 0, 0]))
    m = msg(24, body)
    d = decode(0, m + rta(5, bytes([1, 2, 3, 4])) + b"garbage")
    assert d.attrs == {"RTA_DST": "10.0.0.0"}
    assert not d.truncated and d.malformed is None


def test_short_fixed_header():
    d = decode(0, msg(24, RTMSG_V4[:5], flags=0))
    assert d.malformed == "payload 5 bytes, shorter than its 12-byte header"
    assert d.fields["family"] == "AF_INET" and d.fields["dst_len"] == 24
    # a dump request may legitimately send only struct rtgenmsg
    g = decode(0, msg(18, b"\x0a\0\0\0", flags=0x301))
    assert g.malformed is None and g.fields == {"family": "AF_INET6"}
    assert g.flag_names == ["NLM_F_REQUEST", "NLM_F_DUMP"]


# -- attributes --------------------------------------------------------------------
def test_attribute_overrun():
    body = RTMSG_V4 + rta(1, bytes([10, 0, 0, 0])) + \
        struct.pack("=HH", 200, 5) + bytes([10, 0, 0, 1])
    d = decode(0, msg(25, body))
    assert not d.truncated
    assert d.malformed == ("attribute RTA_GATEWAY length 200 overruns its "
                           "container (8 bytes left)")
    assert d.attrs["RTA_DST"] == "10.0.0.0"          # the prefix is kept
    assert d.attrs["RTA_GATEWAY"] == "10.0.0.1"      # and what it holds


def test_attribute_shorter_than_its_header():
    body = RTMSG_V4 + rta(1, bytes([10, 0, 0, 0])) + struct.pack("=HH", 2, 5) + \
        bytes(8)
    d = decode(0, msg(25, body))
    assert d.malformed == "attribute length 2 < 4 at offset 36"
    assert d.attrs == {"RTA_DST": "10.0.0.0"}


def test_nested_overrun():
    info = struct.pack("=HH", 60, 1) + b"veth\0\0\0\0"      # IFLA_INFO_KIND
    body = bytes(16) + rta(3, b"eth0\0") + rta(18, info) + rta(4, struct.pack("=I", 1500))
    d = decode(0, msg(16, body))
    assert d.attrs["IFLA_IFNAME"] == "eth0"
    assert d.attrs["IFLA_MTU"] == 1500                        # after the nest
    assert "IFLA_INFO_KIND" in d.malformed and "overruns" in d.malformed


def test_scalar_with_wrong_size():
    body = RTMSG_V4 + rta(4, b"\x01\x02")                     # RTA_OIF, 2 bytes
    d = decode(0, msg(24, body))
    assert d.malformed == "attribute RTA_OIF has a bad length (2 bytes)"
    assert d.attrs["RTA_OIF"] == "0102"


def test_unknown_attribute_kept_as_hex():
    body = RTMSG_V4 + rta(1, bytes([10, 0, 0, 0])) + rta(99, b"\xde\xad\xbe\xef")
    d = decode(0, msg(24, body))
    assert d.attrs == {"RTA_DST": "10.0.0.0", "UNKNOWN_99": "deadbeef"}
    assert d.malformed is None


def test_repeated_attributes_become_lists():
    body = bytes(16) + rta(53, b"alt0\0") + rta(3, b"eth0\0") + rta(53, b"alt1\0")
    d = decode(0, msg(16, body, flags=0))
    # IFLA_ALT_IFNAME (53) appears twice: both kept, in order
    assert d.attrs["IFLA_ALT_IFNAME"] == ["alt0", "alt1"]
    assert d.attrs["IFLA_IFNAME"] == "eth0"


def test_absurdly_deep_nesting_stops():
    inner = rta(1, b"dev0\0")
    for _ in range(500):
        inner = rta(27, inner, nested=True)       # DEVLINK_ATTR_DPIPE_TABLES
        if len(inner) > 60000:
            break
    data = msg(0x20, bytes([1, 1, 0, 0]) + inner, flags=0)
    fams = GenlFamilies({0x20: "devlink"})
    t = time.perf_counter()
    d = decode(16, data, fams)
    assert time.perf_counter() - t < 2.0
    assert d.type_name == "devlink.DEVLINK_CMD_GET"
    assert d.malformed == "nesting too deep (> %d levels)" % MAX_DEPTH
    depth, v = 0, d.attrs
    while isinstance(v, dict) and "DEVLINK_ATTR_DPIPE_TABLES" in v:
        v = v["DEVLINK_ATTR_DPIPE_TABLES"]
        depth += 1
    assert depth == MAX_DEPTH and isinstance(v, str)     # the rest as hex
    check_plain(d)


def test_deep_generic_nesting_in_an_unknown_family_stops():
    inner = rta(1, b"x")
    for _ in range(400):
        inner = rta(2, inner, nested=True)
    d = decode(16, msg(0x30, bytes([1, 1, 0, 0]) + inner))
    assert d.type_name == "0x30.cmd 1"
    assert d.malformed == "nesting too deep (> %d levels)" % MAX_DEPTH
    check_plain(d)


def test_zero_length_element_in_a_nested_array_does_not_hang():
    # pyroute2 alone loops forever on this (CTRL_ATTR_OPS is an array)
    ops = rta(1, rta(1, struct.pack("=I", 3))) + struct.pack("=HH", 0, 2) + bytes(8)
    body = bytes([1, 2, 0, 0]) + rta(2, b"fam\0") + rta(1, struct.pack("=H", 0x22)) + \
        rta(6, ops)
    t = time.perf_counter()
    d = decode(16, msg(16, body, flags=0))
    assert time.perf_counter() - t < 1.0
    assert d.attrs["CTRL_ATTR_FAMILY_NAME"] == "fam"
    assert d.attrs["CTRL_ATTR_OPS"] == [{"CTRL_ATTR_OP_ID": 3}]
    assert d.malformed == "array CTRL_ATTR_OPS: element length 0 < 4"


def test_rta_encap_before_its_type_with_odd_lengths_does_not_hang():
    # pyroute2's encap_info walks unaligned lengths and can spin on a zero
    body = RTMSG_V4 + rta(22, b"\0" * 4, nested=True) + struct.pack("=HH", 5, 27) + \
        b"\x01\0\0\0" + rta(21, struct.pack("=H", 1))
    t = time.perf_counter()
    d = decode(0, msg(24, body))
    assert time.perf_counter() - t < 1.0
    assert d.attrs["RTA_ENCAP_TYPE"] == 1
    assert d.attrs["RTA_IP_PROTO"] == 1
    check_plain(d)


def test_protinfo_outside_bridge_family_keeps_the_rest():
    # pyroute2 raises KeyError selecting IFLA_PROTINFO's class for AF_INET6
    ifi = bytes([10, 0]) + struct.pack("=HiII", 1, 2, 0, 0)
    body = ifi + rta(3, b"eth0\0") + rta(12, rta(1, struct.pack("=I", 0x80000000)),
                                       nested=True) + rta(4, struct.pack("=I", 9000))
    d = decode(0, msg(16, body, flags=2))
    assert d.attrs["IFLA_IFNAME"] == "eth0"
    assert d.attrs["IFLA_MTU"] == 9000
    assert isinstance(d.attrs["IFLA_PROTINFO"], str)
    assert d.malformed is None


def test_address_family_decides_address_text():
    v6 = bytes([10, 64, 0, 0, 254, 3, 0, 1]) + struct.pack("=I", 0)
    gw6 = bytes.fromhex("fe800000000000000000000000000001")
    d = decode(0, msg(24, v6 + rta(1, bytes.fromhex("20010db8" + "00" * 12)) +
                      rta(5, gw6)))
    assert d.attrs == {"RTA_DST": "2001:db8::", "RTA_GATEWAY": "fe80::1"}
    # RTNL_FAMILY_IPMR (128): pyroute2 has no family for it, text by length
    mr = bytes([128, 32, 0, 0, 252, 17, 0, 5]) + struct.pack("=I", 0)
    d = decode(0, msg(24, mr + rta(1, bytes([239, 1, 1, 1])), flags=0))
    assert d.fields["family"] == "RTNL_FAMILY_IPMR"
    assert d.attrs["RTA_DST"] == "239.1.1.1"
    # AF_MPLS: RTA_DST is a label stack
    mp = bytes([28, 20, 0, 0, 254, 3, 0, 1]) + struct.pack("=I", 0)
    d = decode(0, msg(24, mp + rta(1, struct.pack(">I", (100 << 12) | 0x100 | 64))))
    assert d.attrs["RTA_DST"] == [{"label": 100, "tc": 0, "bos": 1, "ttl": 64}]


# -- types and protocols nobody knows --------------------------------------------
def test_unknown_route_type():
    d = decode(0, msg(0x7F, b"\x01\x02\x03\x04"))
    assert d.type_name == "0x7f"
    assert d.payload == b"\x01\x02\x03\x04"
    assert d.summary() == "01020304"       # after the type, which the line says first
    assert d.to_json()["payload"] == "01020304"


def test_unknown_protocol():
    d = decode(25, msg(0x10, b"\xaa" * 40))
    assert d.protocol_name == "25" and d.type_name == "0x10"
    assert d.summary().startswith("aaaaaaaa")
    assert d.malformed is None
    d = decode(-3, msg(0x10, b""))
    assert d.type_name == "0x10"


def test_reserved_control_types():
    d = decode(0, msg(1, b""))
    assert d.type_name == "NLMSG_NOOP"
    d = decode(0, msg(4, b""))
    assert d.type_name == "NLMSG_OVERRUN"
    d = decode(0, msg(9, b"\x01"))
    assert d.type_name == "0x9"


def test_error_with_garbage_echo_and_tlvs():
    body = struct.pack("=i", -95) + hdr(3, 24) + struct.pack("=HH", 300, 1) + b"abc"
    d = decode(0, hdr(16 + len(body), 2, 0x200) + body)
    assert d.errno == 95 and d.error == "EOPNOTSUPP"
    assert d.malformed is not None
    check_plain(d)
    # positive error codes are not what the kernel sends
    d = decode(0, hdr(36, 2) + struct.pack("=i", 5) + hdr(16, 24))
    assert d.errno == 5 and d.malformed == "positive error code 5"


def test_not_bytes():
    assert decode(0, bytearray(msg(24, RTMSG_V4))).type_name == "RTM_NEWROUTE"
    assert decode(0, memoryview(msg(24, RTMSG_V4))).type_name == "RTM_NEWROUTE"
    assert decode(0, None).truncated
    d = decode(0, "not bytes")
    assert isinstance(d, Decoded) and d.malformed.startswith("decoder error")
    assert decode("zero", msg(24, RTMSG_V4)).protocol == -1


# -- every fixture, cut at every length ---------------------------------------------
def _top_level_entries(data):
    from nlbpf.decode.core import _tables
    cls = _tables().ROUTE_CLASSES.get(struct.unpack_from("=H", data, 4)[0])
    fs = fields_size(cls)
    entries, _ = scan_chain(data, (16 + fs + 3) & ~3, len(data))
    return entries


# the big RTM_NEWLINK replies recur in many captures: cut one set of them
CUT = [a for a in ALL if len(a[2]) <= 1024 or a[0].startswith("link_dump")]


@pytest.mark.parametrize("label,proto,data", CUT, ids=[a[0] for a in CUT])
def test_cut_at_every_length(label, proto, data):
    full = decode(proto, data)
    entries = _top_level_entries(data) if proto == 0 and full.type >= 16 else []
    names = list(full.attrs)
    for cut in range(len(data)):
        d = decode(proto, data[:cut])
        assert d.truncated, (label, cut)
        assert d.malformed is None, (label, cut, d.malformed)
        if cut >= 16:
            assert d.seq == full.seq and d.flags == full.flags
            if cut > 16 or full.protocol != 16:
                assert d.type_name == full.type_name, (label, cut)
        # every top-level attribute that fits decodes exactly as in full
        for i, (off, hlen, _t) in enumerate(entries):
            if off + hlen <= cut and names.count(names[i]) == 1:
                assert d.attrs[names[i]] == full.attrs[names[i]], (label, cut)


# -- hypothesis ---------------------------------------------------------------------
@settings(max_examples=600, **SETTINGS)
@given(st.integers(min_value=0, max_value=31), st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise(proto, data):
    d = decode(proto, data)
    check_plain(d)
    if len(data) >= 4 and proto != 15:    # uevents are not nlmsghdr-framed
        assert d.length == struct.unpack_from("=I", data)[0]


INTERESTING_TYPES = [1, 2, 3, 4, 16, 17, 18, 20, 24, 25, 26, 28, 32, 36, 44, 48,
                     64, 72, 80, 88, 92, 104, 112, 0x10, 0x11, 0x12, 0x13, 0x1c,
                     0x20, 0xA00, 0xA03, 0xA06, 0xA09, 0xA0C, 0x100, 0x600, 1000]


@st.composite
def tlv_chain(draw, depth=0):
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 9))
        t = draw(st.integers(0, 80)) | (0x8000 if draw(st.booleans()) else 0)
        if kind == 0 and depth < 4:
            out += rta(t & 0x7FFF, draw(tlv_chain(depth + 1)), nested=True)
        elif kind == 1:        # lying length
            ln = draw(st.sampled_from([0, 1, 2, 3, 5, 255, 4096, 65535]))
            out += struct.pack("=HH", ln, t) + draw(st.binary(max_size=12))
        else:
            out += rta(t & 0x7FFF, draw(st.binary(max_size=24)))
    return out


@settings(max_examples=600, **SETTINGS)
@given(st.sampled_from([0, 4, 6, 9, 11, 12, 15, 16]),
       st.sampled_from(INTERESTING_TYPES),
       st.integers(0, 0xFFFF),
       st.binary(min_size=0, max_size=80),
       tlv_chain())
def test_structured_garbage_never_raises(proto, mtype, flags, fixed, chain):
    body = fixed + chain
    fams = GenlFamilies({0x1c: "mptcp_pm", 0x20: "devlink", 0x12: "nl80211",
                         0x13: "ethtool", 0x11: "wireguard", 0x100: "TASKSTATS"})
    d = decode(proto, hdr(16 + len(body), mtype, flags) + body, fams)
    check_plain(d)
    assert not d.truncated


@settings(max_examples=400, **SETTINGS)
@given(st.sampled_from(ALL), st.data())
def test_valid_message_cut_anywhere_is_truncated(item, data):
    label, proto, msg_bytes = item
    cut = data.draw(st.integers(0, len(msg_bytes) - 1))
    d = decode(proto, msg_bytes[:cut])
    assert d.truncated and d.malformed is None
    check_plain(d)


@settings(max_examples=400, **SETTINGS)
@given(st.sampled_from(ALL), st.data())
def test_mutated_captures_never_raise(item, data):
    label, proto, msg_bytes = item
    buf = bytearray(msg_bytes)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    d = decode(proto, bytes(buf), GenlFamilies())
    check_plain(d)


@pytest.mark.parametrize("name,protocol,data", CUT, ids=[a[0] for a in CUT])
def test_summary_of_a_cut_message_shows_no_python_reprs(name, protocol, data):
    """A message cut short prints '?' or hex where a field is missing, never b'...'."""
    for cut in range(16, min(len(data), 1024), 4):
        line = decode(protocol, data[:cut]).summary() or ""
        assert "b'" not in line and 'b"' not in line and "bytearray(" not in line, (cut, line)
