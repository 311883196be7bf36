"""The message in full under its line (trace -v, errors, slow -v): names, not Python
reprs; nested attributes indented; long values cut with a count."""
from nlbpf.decode import decode
from nlbpf.output.detail import MAX_CHARS, MAX_ITEMS, detail_lines, value_text


def test_values_are_written_as_the_rest_of_the_output():
    assert value_text({"soft_byte_limit": 18446744073709551615, "hard_packet_limit": 0}) == \
        "{soft_byte_limit=18446744073709551615 hard_packet_limit=0}"
    assert value_text(["IFF_UP", "IFF_LOOPBACK"]) == "IFF_UP|IFF_LOOPBACK"
    assert value_text([1, 2, 3]) == "[1, 2, 3]"
    assert value_text(["", "", ""]) == '["", "", ""]'
    assert value_text(None) == "-" and value_text(True) == "true"


def test_long_values_are_cut_with_a_count():
    assert value_text(list(range(100))).endswith(f", … {100 - MAX_ITEMS} more]")
    blob = "ab" * 2000
    assert value_text(blob) == blob[:MAX_CHARS] + "… (4000 chars)"
    many = {f"f{i}": i for i in range(40)}
    assert value_text(many).endswith(f" … {40 - MAX_ITEMS} more}}")


def test_nested_attributes_are_indented_under_their_parent():
    decoded = {"fields": {"family": "AF_UNSPEC", "ifi_type": 0, "flags": []},
               "attrs": {"IFLA_IFNAME": "veth0",
                         "IFLA_LINKINFO": {"IFLA_INFO_KIND": "veth",
                                           "IFLA_INFO_DATA": {"VETH_INFO_PEER": {
                                               "IFLA_IFNAME": "veth1"}}},
                         "IFLA_STATS64": {"rx_packets": 1, "tx_packets": 2}}}
    assert detail_lines(decoded) == [
        "header: family=AF_UNSPEC ifi_type=0 flags=0",
        "IFLA_IFNAME=veth0",
        "IFLA_LINKINFO:",
        "  IFLA_INFO_KIND=veth",
        "  IFLA_INFO_DATA:",
        "    VETH_INFO_PEER:",
        "      IFLA_IFNAME=veth1",
        "IFLA_STATS64={rx_packets=1 tx_packets=2}",
    ]
    # errors without -v: the same values, the attributes on one line
    assert detail_lines(decoded, full=False)[1] == (
        "attrs: IFLA_IFNAME=veth0 IFLA_LINKINFO.IFLA_INFO_KIND=veth "
        "IFLA_LINKINFO.IFLA_INFO_DATA.VETH_INFO_PEER.IFLA_IFNAME=veth1 "
        "IFLA_STATS64={rx_packets=1 tx_packets=2}")


def test_a_cut_message_says_what_snaplen_keeps_it_whole():
    lines = detail_lines({"attrs": {"IFLA_IFNAME": "lo"}}, truncated=True, length=1468, kept=1024)
    assert lines[-1] == "truncated: 1024 of 1468 bytes kept (--snaplen 1468 keeps it)"
    lines = detail_lines({"attrs": {}}, truncated=True, length=70000, kept=4096)
    assert lines[-1] == "truncated: 4096 of 70000 bytes kept (more than --snaplen can keep (4096))"


def test_flags_and_enums_pyroute2_leaves_as_numbers_are_named():
    # ip link show: RTM_GETLINK with IFLA_EXT_MASK = VF | SKIP_STATS (9); the request's
    # ifi_type 0 means "not given", not ARPHRD_NETROM
    import struct
    attrs = struct.pack("=HHI", 8, 29, 9) + struct.pack("=HH4s", 7, 3, b"lo\0\0")[:8]
    body = struct.pack("=BxHiII", 0, 0, 0, 0, 0) + attrs
    msg = struct.pack("=IHHII", 16 + len(body), 18, 1, 7, 0) + body
    d = decode(0, msg).to_json()
    assert d["attrs"]["IFLA_EXT_MASK"] == ["RTEXT_FILTER_VF", "RTEXT_FILTER_SKIP_STATS"]
    assert d["fields"]["ifi_type"] == 0
    assert "IFLA_EXT_MASK=RTEXT_FILTER_VF|RTEXT_FILTER_SKIP_STATS" in detail_lines(d)


REPR_MARKS = ("{'", "':", "[b'", "b'", "None", "True", "False", "\\x")


def test_every_fixture_message_renders_as_names_without_a_python_repr():
    """Every message of the fixtures (real captures: route, genl, nftables, xfrm,
    sock_diag, malformed and hostile ones) renders in full with no Python repr in it,
    and no line runs on: long values are cut."""
    from tests.helpers.nlfixtures import all_messages
    seen = 0
    for label, protocol, data in all_messages():
        d = decode(protocol, data).to_json()
        for line in detail_lines(d) + detail_lines(d, full=False):
            assert not any(mark in line for mark in REPR_MARKS), (label, line)
            assert len(line) < 4 * MAX_CHARS * MAX_ITEMS, (label, len(line))
        seen += 1
    assert seen > 100
