"""What reading hostile and broken capture files found (issue #23, item 6), one test each.

Each runs nlbpf in-process over a file made for it (tests/fixtures/pcap/readcheck.py)
and checks what the command must do: no traceback, and the output or the one-line
message the case calls for.
"""
import json
import struct
import time

import pytest

from tests.helpers import readcheck as rc

from nlbpf.files.recording import (CaptureFile, PortResolver, RESOLVE_HOLD_NS, decode_comment,
                           meta_from_json, where_from_json)
from nlbpf.commands.read import OPEN_MAX, OfflineFilter, TOP_ROWS_MAX, TopCounters
from nlbpf.filters import Filters
from nlbpf.model import Message, REQUEST, REPLY, NOTIFY
from nlbpf.output.records import clock

NS = 10**9


@pytest.fixture
def capfile(tmp_path):
    """write(bytes) -> a path holding them."""
    def write(data, name="f.pcapng"):
        path = tmp_path / name
        path.write_bytes(data)
        return path
    return write


def every_view(path):
    """Every view over path, checked (rc.check)
    bug pass (a message of no known process, pid 0, as the case makes)."""
    return [rc.check(rc.run(*argv)) for argv in rc.views(path)]


def shows_records(out):
    """Something on stdout in the trace and top views (the files of these tests have no
    errors, and may have no pairs for slow)."""
    if "errors" in out.args or "slow" in out.args:
        return True
    return bool(out.out.strip())


def lines(result):
    return [json.loads(line) for line in result.out.splitlines()]


# ----------------------------------------------------------------- top --read
def nlmon_with_a_notification():
    """A request, its ack, and a kernel notification nobody asked for (port 0): what
    any nlmon capture with listeners holds."""
    req = rc.route_request()
    note = rc.nlmsg(24, 0, 0, req[16:])
    return rc.pcap([(10**18, rc.cooked() + req), (10**18 + 5000, rc.cooked() + rc.ack(req, 555)),
                    (10**18 + 9000, rc.cooked() + note)])


def test_top_of_an_nlmon_capture_counts_requests_and_replies(capfile):
    # the one process, its request and reply
    path = capfile(rc.pcap([(10**18, rc.cooked() + rc.route_request()),
                            (10**18 + 5000, rc.cooked() + rc.ack(rc.route_request(), 555))]),
                   "nlmon.pcap")
    out = rc.check(rc.run("top", "--read", path, "--json"))
    assert out.code == 0
    (interval,) = lines(out)
    (row,) = interval["rows"]
    assert (row["pid"], row["requests"], row["msgs_in"], row["msgs_out"]) == (555, 1, 1, 1)


@pytest.mark.parametrize("argv", [["top", "--read"], ["top", "--json", "--read"],
                                  ["top", "-i", "1", "--read"]])
def test_top_of_an_nlmon_capture_with_notifications(capfile, argv):
    path = capfile(nlmon_with_a_notification(), "nlmon.pcap")
    out = rc.check(rc.run(*argv, path))
    assert out.code == 0 and out.out


# ----------------------------------------------------------------- timestamps
@pytest.mark.parametrize("ts", [1e20, -1e20, 2.0**62, -(2.0**62), 1e28])
def test_clock_shows_times_no_calendar_holds(ts):
    text = clock(ts)
    assert text and "." in text


@pytest.mark.parametrize("tsresol,tsoffset,ticks", [
    (9, 2**62, 10**18),             # if_tsoffset: 146 billion years on
    (9, -2**62, 10**18),            # and back
    (0x80, None, 2**64 - 1),        # 2^0 units a second: 584 billion years
    (0, None, 2**64 - 1),           # 10^0: the same in decimal
    (9, None, 0),                   # the epoch
    (9, 2**63 - 1, 2**64 - 1),      # everything at once
])
def test_extreme_timestamps_print_something(capfile, tsresol, tsoffset, ticks):
    path = capfile(rc.nlbpf_capture(tsresol=tsresol, tsoffset=tsoffset, ticks=ticks))
    for out in every_view(path):
        assert out.code == 0 and shows_records(out), out
    trace = rc.run("read", path)
    assert "RTM_NEWROUTE" in trace.out


# ------------------------------------------------------------ comments' text
def test_a_lone_surrogate_in_a_comment_prints_as_a_replacement(capfile):
    comment = rc.who("request").replace("comm=ip", 'comm="ip\\ud800x"')
    reply = rc.who("reply").replace("comm=ip", 'comm="ip\\udfff"')
    path = capfile(rc.nlbpf_capture(request_comment=comment, reply_comment=reply))
    for out in every_view(path):
        assert out.code == 0
    recs = lines(rc.run("read", path, "--json"))
    assert recs[0]["comm"] == "ip\ufffdx"
    assert "ip\ufffdx" in rc.run("read", path).out
    assert decode_comment('a="\\ud800\\ud83d\\ude00"') == {"a": "\ufffd\U0001F600"}


def test_bad_utf8_in_comments_and_options_is_read_safely(capfile):
    bad = b"pid=4242 comm=\xff\xfeip\xc3 tid=4242 dir=request netns=1 cgroup=7 portid=4242 " \
          b"syscall=send\xedmsg ret=44 dur_ns=5"
    req = rc.route_request()
    data = rc.pcapng(rc.shb([b"\xff\xfe", b"nlbpf-meta {\"offset_ns\": 5, \"filters\": \"\xc3\"}"]),
                     rc.idb(name=b"\xc0\x80nl\xff"),
                     rc.epb(rc.cooked() + req, comments=[bad]),
                     rc.epb(rc.cooked() + rc.ack(req),
                            comments=[rc.who("reply").encode() + b"\xff"]))
    path = capfile(data)
    for out in every_view(path):
        assert out.code == 0
    recs = lines(rc.run("read", path, "--json"))
    assert recs[0]["comm"] == "\ufffd\ufffdip\ufffd" and recs[0]["pid"] == 4242


# ------------------------------------------------------------------ metadata
DEEP = [
    "[" * 10000 + "]" * 10000,
    '{"a":' * 10000 + "1" + "}" * 10000,
    '{"offset_ns": 5, "genl_families": ' + "[" * 5000 + "]" * 5000 + "}",
    "[" * 10000,                                    # not even closed
]


@pytest.mark.parametrize("meta", DEEP, ids=["arrays", "objects", "inside", "unclosed"])
def test_deeply_nested_metadata_is_ignored_with_one_warning(capfile, meta):
    path = capfile(rc.nlbpf_capture(meta=meta))
    for out in every_view(path):
        assert out.code == 0
        warnings = [line for line in out.err.splitlines() if "nlbpf-meta" in line]
        assert len(warnings) == 1, out.err
    assert len(lines(rc.run("read", path, "--json"))) == 2


GOOD_FAMILIES = [[16, "nlctrl", 2, [[16, "notify"]]], [21, "wireguard", 1, []]]


@pytest.mark.parametrize("meta,used", [
    ({}, True),                                             # missing keys: nothing to say
    ({"offset_ns": 10**400}, False),                        # huge
    ('{"offset_ns": ' + "9" * 5000 + "}", False),            # more digits than json allows
    ({"offset_ns": "5"}, False),
    ({"offset_ns": 1.5e300}, False),
    ({"offset_ns": True}, False),
    ({"offset_ns": None, "snaplen": -1}, False),
    ({"genl_families": {"a": 1}}, False),
    ({"genl_families": "wireguard"}, False),
    ({"genl_families": GOOD_FAMILIES + [[10**30, "x", 1, []], ["a", {}, None, None], 5,
                                        [22, "y", "v", [[1, 2]]], [23, "z", 1, [[2**40, "g"]]],
                                        [24, "\ud800w", 1, [[3, "\udfff"]]]]}, False),
    ({"genl_families": GOOD_FAMILIES, "unknown": [[[]]], "v": 7}, True),
    ("[1, 2, 3]", False),
    ('"hello"', False),
    ("null", False),
    ("NaN", False),
    ('{"offset_ns": Infinity}', False),
    ("{not json", False),
])
def test_metadata_of_any_shape_is_used_or_ignored_with_one_warning(capfile, meta, used):
    text = meta if isinstance(meta, str) else json.dumps(meta)
    path = capfile(rc.nlbpf_capture(meta=text))
    for out in every_view(path):
        assert out.code == 0
        warnings = [line for line in out.err.splitlines() if "nlbpf-meta" in line]
        assert len(warnings) == (0 if used else 1), out.err
    assert len(lines(rc.run("read", path, "--json"))) == 2
    parsed, why = meta_from_json(text)
    assert (why is None) == used
    families = meta.get("genl_families") if isinstance(meta, dict) else None
    if isinstance(families, list):
        assert [f[:2] for f in parsed["genl_families"]][:2] == [[16, "nlctrl"], [21, "wireguard"]]
        assert all("\ud800" not in f[1] for f in parsed["genl_families"])


@pytest.mark.parametrize("where", [
    '"' + "[" * 10000 + '"',
    json.dumps({"netns_name": 5}),
    json.dumps({"netns_name": "blue", "container": {"id": 7, "pod": ["x"]}}),
    json.dumps({"container": "docker"}),
    json.dumps([1]),
    json.dumps({"netns_name": {"a": [[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]}}),
    "not json",
])
def test_context_events_of_any_shape_are_ignored_with_one_warning(capfile, where):
    context = f"event=context netns=4026532288 cgroup=7 pid=4242 where={where}"
    path = capfile(rc.nlbpf_capture(context=context))
    for out in every_view(path):
        assert out.code == 0
        assert sum("context events" in line for line in out.err.splitlines()) == 1, out.err
    recs = lines(rc.run("read", path, "--json"))
    assert len(recs) == 2 and recs[0]["netns_name"] is None


def test_context_events_nlbpf_writes_are_used():
    where = where_from_json(json.dumps({"netns_name": "blue", "cgroup_path": "/a\ud800",
                                        "container": {"id": "abc", "name": None},
                                        "pid": 1}))
    assert where == {"netns_name": "blue", "cgroup_path": "/a\ufffd",
                     "container": {"id": "abc", "name": None}}


# ------------------------------------------------------------ huge numbers
@pytest.mark.parametrize("field", ["dur_ns", "lock_wait_ns", "handler_ns", "dump_ns",
                                   "start_slack_ns", "pid", "netns", "sock", "ret", "len"])
@pytest.mark.parametrize("value", ["9" * 4000, "-" + "9" * 4000, str(2**64), str(-2**63 - 1)])
def test_numbers_no_kernel_field_holds_are_not_used(capfile, field, value):
    pairs = dict(pair.split("=", 1) for pair in rc.who("reply").split())
    pairs[field] = value
    comment = " ".join(f"{k}={v}" for k, v in pairs.items())
    path = capfile(rc.nlbpf_capture(reply_comment=comment))
    # a pid no process can have is 0, "not known"
    for out in every_view(path):
        assert out.code in (0, None) and shows_records(out), out


# ------------------------------------------------------ not a capture at all
@pytest.mark.parametrize("size", [4, 5, 6, 7])
def test_a_pcapng_fragment_is_not_a_capture(capfile, size):
    path = capfile(rc.shb()[:size])
    for out in every_view(path):
        assert out.code == 1
        assert out.err.splitlines() == [f"nlbpf: {path} is too short to be a capture "
                                        f"(no complete pcapng header)"]
        assert not out.out


def test_a_pcap_header_then_zeros_is_damaged_and_says_so_at_once(tmp_path):
    path = tmp_path / "zeros.pcap"
    with open(path, "wb") as f:
        f.write(rc.pcap([]))
        f.truncate(24 + 100 * 2**20)         # 100 MB of zeros (sparse)
    started = time.monotonic()
    for argv in rc.views(path)[:4]:
        out = rc.check(rc.run(*argv))
        assert out.code == 1
        assert out.err.splitlines()[-1] == (f"nlbpf: {path} is damaged at byte 24: a packet "
                                            f"record of 0 bytes (0 packets read before it)")
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("data", [b"hello", b"\x00" * 64, b"\x0a\x0d\x0d\x0a" + b"\xff" * 40,
                                  b"\xd4\xc3\xb2\xa1\x02\x00", b"\x1f\x8b\x08rest"])
def test_what_is_not_a_capture_exits_non_zero_in_one_line(capfile, data):
    path = capfile(data)
    for out in every_view(path):
        assert out.code == 1 and len(out.err.splitlines()) == 1, out
        assert out.err.startswith(f"nlbpf: {path}")


# ------------------------------------------------------- cut short, damaged
def nlmon_rounds(n):
    packets = []
    for i in range(n):
        req = rc.route_request(seq=100 + i)
        packets += [(10**18 + i * NS, rc.cooked() + req),
                    (10**18 + i * NS + 5000, rc.cooked() + rc.ack(req, 600 + i))]
    return packets


def test_a_damaged_nlmon_capture_shows_what_came_before_the_damage(capfile):
    data = bytearray(rc.pcap(nlmon_rounds(10)))
    # the 12th packet record's lengths: 0 bytes
    offset, n = 24, 0
    while n < 11:
        incl = struct.unpack_from("<I", data, offset + 8)[0]
        offset += 16 + incl
        n += 1
    struct.pack_into("<II", data, offset + 8, 0, 0)
    path = capfile(bytes(data), "damaged.pcap")
    # the last request read lost its reply to the damage, so its port (pid 0)
    for out in every_view(path):
        assert out.code == 1
        assert out.err.splitlines()[-1] == (f"nlbpf: {path} is damaged at byte {offset}: a "
                                            f"packet record of 0 bytes (11 packets read before it)")
        assert shows_records(out), out
    recs = lines(rc.run("read", path, "--json"))
    assert [r["pid"] for r in recs] == [600, 600, 601, 601, 602, 602, 603, 603, 604, 604, 0]


@pytest.mark.parametrize("kind", ["nlmon", "nlbpf"])
def test_a_capture_cut_short_warns_once_and_shows_what_it_had(capfile, kind):
    data = rc.pcap(nlmon_rounds(4)) if kind == "nlmon" else rc.nlbpf_capture()
    path = capfile(data[:-7])
    # nlmon: the last request lost its reply, so its port (pid 0)
    for out in every_view(path):
        assert out.code == 0 and shows_records(out), out
        assert sum("cut short" in line for line in out.err.splitlines()) == 1, out.err
    assert len(lines(rc.run("read", path, "--json"))) == (7 if kind == "nlmon" else 2)


# ------------------------------------------------------------- bounded state
def foreign(ts, data, direction):
    return Message(ts_ns=ts, pid=0, tid=0, comm="?", protocol=0, direction=direction,
                   data=data, length=len(data))


def test_a_request_nothing_answers_waits_for_its_port_only_so_long():
    resolver = PortResolver()
    lone = foreign(0, rc.nlmsg(16, 1, 77, bytes(16)), REQUEST)     # no NLM_F_ACK: no reply
    assert resolver.push(lone) == []
    out = []
    for i in range(1, 40):
        req = rc.route_request(seq=i)
        out += resolver.push(foreign(i * NS, req, REQUEST))
        out += resolver.push(foreign(i * NS + 1000, rc.ack(req, 1000 + i), REPLY))
    # everything went on once the lone request had waited RESOLVE_HOLD_NS (30 s)
    assert out[0] is lone and lone.pid == 0
    assert RESOLVE_HOLD_NS == 30 * NS and len(out) >= 2 * 30
    assert [m.pid for m in out[1:]] == [m.portid for m in out[1:]] != [0] * (len(out) - 1)
    rest = list(resolver.flush())
    assert len(out) + len(rest) == 1 + 2 * 39 and not resolver.queue


def test_what_waits_behind_a_request_is_bounded_in_bytes():
    resolver = PortResolver(hold_bytes=64 * 1024)
    resolver.push(foreign(0, rc.nlmsg(16, 1, 77, bytes(16)), REQUEST))
    held = []
    for i in range(1, 2000):
        resolver.push(foreign(i, rc.nlmsg(24, 0, 0, bytes(200)), REPLY))   # notifications
        held.append(len(resolver.queue))
    assert max(held) < 200 and resolver.held <= 64 * 1024 + 1024


def test_requests_take_the_port_of_their_reply_in_file_order():
    resolver = PortResolver()
    req = rc.route_request(seq=7)
    tail = bytes(20)
    msgs = [foreign(1, req, REQUEST), foreign(1, tail, REQUEST),
            foreign(2, rc.nlmsg(24, 0, 0, bytes(16)), REPLY),          # a kernel notification
            foreign(3, rc.ack(req, 555), REPLY)]
    msgs[1].length = 0
    out = []
    for m in msgs:
        out += resolver.push(m)
        if m is msgs[2]:
            assert out == []            # still waiting for the request's port
    assert out == msgs
    assert [(m.direction, m.pid) for m in msgs] == [(REQUEST, 555), (REQUEST, 555), (NOTIFY, 0),
                                                    (REPLY, 555)]


def test_the_table_of_requests_replies_are_matched_against_is_bounded():
    resolver = PortResolver()
    for i in range(50_000):
        resolver.push(foreign(i, rc.nlmsg(16, 5, i, bytes(16), portid=9), REQUEST))
    assert resolver.open <= 16384 and len(resolver.order) <= 16384


def test_top_holds_as_many_processes_as_the_kernels_table():
    top = TopCounters()
    for pid in range(1, TOP_ROWS_MAX + 100):
        top.add(Message(ts_ns=pid, pid=pid, tid=pid, comm="x", protocol=0, direction=REQUEST,
                        data=rc.route_request(), length=52))
    assert len(top.rows) == TOP_ROWS_MAX and top.full == 99
    top.reset()
    assert not top.rows and not top.types


def test_the_type_filters_open_requests_are_bounded():
    flt = OfflineFilter(Filters(type=24))
    for i in range(OPEN_MAX + 500):
        msg = Message(ts_ns=i, pid=i + 1, tid=1, comm="x", protocol=0, direction=REQUEST,
                      data=rc.route_request(seq=i), length=52)
        assert flt.message(msg)
    assert len(flt.open) == OPEN_MAX


def test_reading_the_fixtures_still_gives_their_pairs():
    nlmon = CaptureFile.open(str(rc.HERE / "nlmon-route.pcap"))
    recs = list(nlmon.records())
    assert len(recs) == nlmon.counts["messages"] and all(m.pid == m.portid for m in recs)
    assert {m.direction for m in recs} <= {REQUEST, REPLY, NOTIFY}


def test_the_reader_keeps_the_first_section_and_the_current_one():
    import io
    from nlbpf.files.pcap import MAX_TEXT, Reader
    req = rc.route_request()
    sections = b"".join(rc.shb([f"section {i}"]) + rc.idb(name="x" * 5000)
                        + rc.epb(rc.cooked() + req) for i in range(50))
    reader = Reader(io.BytesIO(sections))
    assert sum(1 for _ in reader) == 50
    assert [s.comments for s in reader.sections] == [["section 0"], ["section 49"]]
    assert len(reader.interfaces) == 1 and len(reader.interfaces[0].name) == MAX_TEXT


def test_more_interfaces_than_a_section_can_name_is_damage(capfile):
    from nlbpf.files.pcap import MAX_INTERFACES
    one = rc.idb()
    data = rc.shb() + one * (MAX_INTERFACES + 1)
    path = capfile(data)
    out = rc.check(rc.run("read", path))
    at = len(rc.shb()) + MAX_INTERFACES * len(one)
    assert out.code == 1 and out.err.splitlines()[-1] == (
        f"nlbpf: {path} is damaged at byte {at}: more than {MAX_INTERFACES} interfaces in one "
        f"section (0 packets read before it)")


def test_context_events_kept_are_bounded():
    from nlbpf.files.recording import FileContext
    ctx = FileContext()
    where = json.dumps({"netns_name": "n", "cgroup_path": "/", "container": None})
    for netns in range(FileContext.MAX + 10):
        assert ctx.add({"netns": str(netns), "cgroup": "1", "where": where})
    assert len(ctx.known) == FileContext.MAX
    assert ctx.describe(0, 1)["netns_name"] is None and ctx.describe(FileContext.MAX + 9, 1) \
        == {"netns_name": "n", "cgroup_path": "/", "container": None}


def test_a_uevent_in_an_nlmon_capture_is_one_message_with_no_header(capfile):
    """A kernel uevent has no netlink header: its first bytes ("add@") are no length,
    nor is there a seq. One message, whole, as the probes' records have it too."""
    from nlbpf.netlink import headerless
    uevent = b"add@/devices/virtual/net/veth9\0ACTION=add\0SUBSYSTEM=net\0SEQNUM=991\0"
    assert headerless(15, uevent) and headerless(15, b"libudev\0" + bytes(40))
    assert not headerless(15, rc.route_request()) and not headerless(0, uevent)
    path = capfile(rc.pcap([(10**18, rc.cooked(protocol=15) + uevent)]), "nlmon.pcap")
    out = rc.check(rc.run("trace", "--read", path))
    assert out.code == 0
    (line,) = out.out.splitlines()
    assert "uevent add /devices/virtual/net/veth9 SUBSYSTEM=net" in line, line
    assert "seq=" not in line and "cut" not in line and "truncated" not in line, line
    (rec,) = lines(rc.check(rc.run("trace", "--read", path, "--json")))
    assert rec["direction"] == "notify" and not rec["truncated"], rec
