"""Capture files: writer/reader round trips, Wireshark's view, nlmon files, offline views."""
import io
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from nlbpf.files import pcap
from nlbpf.files.recording import (ARPHRD_NETLINK, LINKTYPE_NETLINK, CaptureFile, CaptureWriter,
                           _generic_message_comment, decode_comment, encode_comment,
                           message_comment, resolve_ports)
from nlbpf.capture.records import Extack
from nlbpf.commands.read import OfflineFilter, TopCounters, lat_bucket
from nlbpf.commands.top import bucket_mid_ns
from nlbpf.decode import GenlFamilies
from nlbpf.filters import Filters
from nlbpf.model import Message, SyscallError, REQUEST, REPLY, NOTIFY
from nlbpf.files.pcap import PcapError, PcapngWriter, Reader

from tests.helpers.nlfixtures import answered_requests

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pcap"
NLBPF = [sys.executable, "-m", "nlbpf.cli"]
OFFSET = 1_700_000_000_000_000_000
NETNS = 4026532288


def nlmsg(type_, flags, seq, payload=b"", portid=0, length=None):
    return struct.pack("=IHHII", length if length is not None else 16 + len(payload), type_,
                       flags, seq, portid) + payload


def rtmsg(dst=None, prefix=24):
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, prefix if dst else 0, 0, 0, 254, 3, 0, 1, 0)
    if dst:
        body += struct.pack("=HH", 8, 1) + socket.inet_aton(dst)
    return body


def msg(direction, data, ts=1_000_000, pid=4242, **kw):
    base = dict(ts_ns=ts, pid=pid, tid=pid, comm="ip", protocol=0, direction=direction,
                data=data, length=len(data), netns=NETNS, cgroup=7, sock=0xFFFF888004B3C000,
                portid=pid, syscall="sendmsg" if direction == REQUEST else "recvmsg",
                ret=len(data), dur_ns=5000)
    base.update(kw)
    return Message(**base)


def route_workload():
    """An add that works, a delete that fails with extack, a dump, a notification."""
    add = nlmsg(24, 0x605, 10, rtmsg("198.51.100.0"))
    ack = nlmsg(2, 0x100, 10, struct.pack("=i", 0) + add[:16], portid=4242)
    dele = nlmsg(25, 0x5, 11, rtmsg("198.51.100.0"))
    err = nlmsg(2, 0, 11, struct.pack("=i", -3) + dele, portid=4242)
    dump = nlmsg(26, 0x301, 12, rtmsg())
    part = nlmsg(24, 0x2, 12, rtmsg("192.0.2.0"), portid=4242)
    done = nlmsg(3, 0x2, 12, struct.pack("=i", 0), portid=4242)
    note = nlmsg(24, 0, 0, rtmsg("203.0.113.0"))
    return [
        msg(REQUEST, add, ts=1_000_000),
        msg(REPLY, ack, ts=1_010_000, lock_wait_ns=1200, lock_holder_pid=1, lock_holder_comm="systemd"),
        Extack(ts_ns=1_020_500, pid=4242, tid=4242, sock=0xFFFF888004B3C000,
               text='No such "route" = here'),
        msg(REQUEST, dele, ts=1_020_000),
        msg(REPLY, err, ts=1_030_000),
        msg(REQUEST, dump, ts=1_040_000, syscall="sendto"),
        msg(REPLY, part, ts=1_050_000),
        msg(REPLY, done, ts=1_050_000, skipped_parts=2, skipped_bytes=120, skipped_intr=True),
        msg(NOTIFY, note, ts=1_060_000, pid=99, tid=99, comm="bird 2", groups=0x40),
        msg(REQUEST, add[:20], ts=1_070_000, length=len(add), split=True),
        SyscallError(ts_ns=1_080_000, pid=99, tid=99, comm="bird 2", protocol=0,
                     syscall="recvmsg", errno=105, netns=NETNS, cgroup=7, sock=1, portid=99),
    ]


def where(netns, cgroup, pid):
    return {"netns_name": "blue" if netns == NETNS else None, "cgroup_path": f"/cg{cgroup}",
            "container": None}


def write(records, fmt="pcapng", describe=where, stats=None, snaplen=1024, families=None):
    buf = io.BytesIO()
    w = CaptureWriter(buf, fmt=fmt, snaplen=snaplen, offset_ns=OFFSET,
                      families=families or GenlFamilies({20: "netdev"}),
                      filters="netns 1", describe=describe)
    for rec in records:
        w.write(rec)
    w.close(stats or {"emitted": 40, "lost": 3}, now_ns=OFFSET + 2_000_000)
    return buf.getvalue()


def read(data, name="test.pcapng"):
    cap = CaptureFile(io.BytesIO(data), name)
    return cap, list(cap.records())


# ------------------------------------------------------------- round trips
def test_pcapng_round_trip_gives_back_equal_records():
    records = route_workload()
    cap, back = read(write(records))
    assert back == records
    assert cap.offset_ns == OFFSET
    assert cap.lost == 3
    assert cap.families.name(20) == "netdev"
    assert cap.context.describe(NETNS, 7, 4242)["netns_name"] == "blue"
    assert cap.context.describe(1, 2, 3) == {"netns_name": None, "cgroup_path": None,
                                             "container": None}
    assert not cap.notes


def test_rewriting_what_was_read_is_byte_exact():
    first = write(route_workload())
    cap, back = read(first)
    st = cap.reader.stats[0]
    buf = io.BytesIO()
    w = CaptureWriter(buf, snaplen=cap.meta["snaplen"], offset_ns=cap.offset_ns,
                      families=cap.families, filters=cap.meta["filters"],
                      describe=cap.context.describe)
    for rec in back:
        w.write(rec)
    w.close({"emitted": st.ifrecv, "lost": st.ifdrop}, now_ns=st.ts_ns)
    assert buf.getvalue() == first


def test_packets_carry_nlmon_framing_one_message_each():
    records = [r for r in route_workload() if isinstance(r, Message)]
    reader = Reader(io.BytesIO(write(records, describe=None)))
    pkts = list(reader)
    assert reader.format == "pcapng"
    assert reader.interfaces[0].linktype == LINKTYPE_NETLINK == 253
    assert len(pkts) == len(records)
    for pkt, rec in zip(pkts, records):
        pkttype, hatype, halen, addr, proto = struct.unpack(">HHH8sH", pkt.data[:16])
        assert (pkttype, hatype, halen, addr, proto) == (4, ARPHRD_NETLINK, 0, bytes(8), 0)
        assert pkt.data[16:] == rec.data
        assert pkt.orig_len == 16 + rec.length
        assert pkt.ts_ns == OFFSET + rec.ts_ns                 # when it crossed
        meta = decode_comment(pkt.comments[0])
        assert meta["pid"] == str(rec.pid) and meta["comm"] == rec.comm
        assert meta["dir"] == rec.direction and meta["netns"] == str(NETNS)
        assert pkt.flags & 3 == (2 if rec.direction == REQUEST else 1)


def test_classic_pcap_keeps_pid_tid_direction_and_bytes():
    records = route_workload()
    data = write(records, fmt="pcap")
    assert struct.unpack("<I", data[:4])[0] == 0xA1B23C4D          # nanosecond pcap
    cap, back = read(data, "test.pcap")
    msgs = [r for r in records if isinstance(r, Message)]
    assert len(back) == len(msgs)                                  # events cannot be kept
    for a, b in zip(msgs, back):
        assert (b.pid, b.tid, b.direction, b.data, b.length, b.protocol) == \
            (a.pid, a.tid, a.direction, a.data, a.length, a.protocol)
        assert b.ts_ns == OFFSET + a.ts_ns and b.comm == "?"   # wall clock


def test_comment_codec_quotes_what_needs_it():
    pairs = [("comm", 'a "b"=c'), ("n", 5), ("x", "plain"), ("u", "zürich  two"), ("e", "")]
    text = encode_comment(pairs)
    assert text.startswith('comm="a \\"b\\"=c" n=5 x=plain')
    assert decode_comment(text) == {k: str(v) for k, v in pairs}
    assert decode_comment('pid=1 junk "unterminated comm="x')["pid"] == "1"


def test_fast_message_comment_is_the_generic_codec():
    """record's cached comment text equals the field-by-field codec, whatever the record holds."""
    rnd = random.Random(7)
    rare = {"groups": 1, "lock_wait_ns": 9, "lock_holder_pid": 3, "lock_holder_comm": "x y",
            "extack": "bad", "skipped_parts": 2, "skipped_bytes": 8, "skipped_intr": True,
            "split": True, "handler_ns": 5, "dump_ns": 6, "in_handler": False}
    for _ in range(5000):
        kw = dict(ts_ns=1, pid=rnd.choice([1, 40000]), tid=rnd.choice([1, 2]),
                  comm=rnd.choice(["ip", 'a "b"', "", "zürich"]), protocol=0,
                  direction=rnd.choice([REQUEST, REPLY, NOTIFY]), data=b"",
                  length=rnd.choice([0, 16, 100]), netns=rnd.choice([0, NETNS]),
                  sock=rnd.choice([0, 0xFFFF888012345678]), syscall=rnd.choice(["", "sendmsg"]),
                  ret=rnd.choice([0, -1, 5, True]), dur_ns=rnd.choice([0, 123]))
        if rnd.random() < 0.3:
            name = rnd.choice(sorted(rare))
            kw[name] = rnd.choice([rare[name], 0, None, ""])
        if rnd.random() < 0.05:
            kw[rnd.choice(["comm", "sock", "pid"])] = None
        msg = Message(**kw)
        orig = rnd.choice([16, msg.length + 16])
        assert message_comment(msg, orig) == _generic_message_comment(msg, orig), kw


def test_packet_writer_bytes_match_the_block_builders():
    rnd = random.Random(3)
    for _ in range(2000):
        out = io.BytesIO()
        w = PcapngWriter(out)
        w.add_interface(LINKTYPE_NETLINK, 1040)
        start = out.tell()
        data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(40)))
        comments = [rnd.choice([None, "", "a", "ü x", "abc" * rnd.randrange(5)])
                    for _ in range(rnd.randrange(3))]
        flags = rnd.choice([None, 1, 0x11])
        orig = rnd.choice([None, 0, len(data) + 5])
        ts = rnd.randrange(2 ** 62)
        w.write_packet(0, ts, data, orig, comments=comments, flags=flags)
        ticks = w._ticks(0, ts)
        opts = [(pcap.OPT_COMMENT, pcap._utf8(c)) for c in comments]
        if flags is not None:
            opts.append((pcap.EPB_FLAGS, struct.pack("<I", flags)))
        body = (struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                            max(len(data), orig or 0))
                + data + b"\0" * (-len(data) % 4) + pcap._options(opts))
        assert out.getvalue()[start:] == pcap._block(pcap.PCAPNG_EPB, body)


def test_one_comment_writer_gives_write_packets_bytes():
    """write_commented (record's hot path) against write_packet, the general one."""
    rnd = random.Random(4)
    for tsresol in (9, 6):
        for _ in range(2000):
            blocks = []
            head = bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 16])))
            data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(40)))
            comment = rnd.choice(["", "a", "ü x", "pid=1 comm=ip " * rnd.randrange(5)])
            flags = rnd.choice([None, 1, 0x11])
            orig = rnd.choice([0, len(head) + len(data), len(head) + len(data) + 5])
            ts = rnd.randrange(2 ** 62)
            for general in (True, False):
                out = io.BytesIO()
                w = PcapngWriter(out)
                w.add_interface(LINKTYPE_NETLINK, 1040, tsresol=tsresol)
                start = out.tell()
                if general:
                    w.write_packet(0, ts, head + data, orig, comments=[comment], flags=flags)
                else:
                    w.write_commented(0, ts, head, data, orig, comment, flags)
                blocks.append(out.getvalue()[start:])
            assert blocks[0] == blocks[1]


def test_stream_from_stdin_and_unknown_blocks_are_skipped():
    data = write(route_workload())
    # a custom block (0xBAD) after the section header: skipped
    shb_len = struct.unpack_from("<I", data, 4)[0]
    custom = struct.pack("<II", 0xBAD, 20) + b"\x00\x00\x00\x00\x41\x42\x43\x44" + struct.pack("<I", 20)
    cap, back = read(data[:shb_len] + custom + data[shb_len:])
    assert back == route_workload()


def test_big_endian_pcapng_from_elsewhere():
    """A pcapng section in big-endian byte order (written by another tool)."""
    def block(btype, body):
        return struct.pack(">II", btype, 12 + len(body)) + body + struct.pack(">I", 12 + len(body))
    payload = struct.pack(">HHH8sH", 4, 824, 0, bytes(8), 0) + nlmsg(18, 1, 5, bytes(16))
    data = (block(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
            + block(1, struct.pack(">HHI", 253, 0, 65535))
            + block(6, struct.pack(">IIIII", 0, 0, 1_000_000, len(payload), len(payload)) + payload))
    cap, back = read(data)
    assert len(back) == 1 and back[0].nl_type == 18 and back[0].ts_ns == 1_000_000_000
    assert back[0].direction == REQUEST


# -------------------------------------------------------- damaged files
def block_ends(data):
    ends, off = set(), 0
    while off + 8 <= len(data):
        off += struct.unpack_from("<I", data, off + 4)[0]
        ends.add(off)
    return ends


def test_cut_at_every_offset_reads_a_prefix_or_says_why():
    records = route_workload()
    data = write(records)
    ends = block_ends(data)
    for cut in range(len(data)):
        try:
            cap, back = read(data[:cut])
        except PcapError as e:
            assert str(e)
            continue
        assert back == records[:len(back)]
        assert any("cut short" in n for n in cap.notes) == (cut not in ends)


def test_cut_classic_pcap_at_every_offset():
    data = write(route_workload(), fmt="pcap")
    for cut in range(len(data)):
        try:
            read(data[:cut], "t.pcap")
        except PcapError as e:
            assert "t.pcap" in str(e)


@pytest.mark.parametrize("data,why", [
    (b"", "empty"),
    (b"\x0a\x0d", "too short"),
    (b"hello world, not a capture", "not a pcap"),
    (b"\x1f\x8b\x08\x00rest", "gzip"),
    (b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x00\x00\x00\x00" + bytes(16), "byte-order"),
    (b"\xd4\xc3\xb2\xa1\x07\x00" + bytes(18), "version"),
])
def test_garbage_gives_one_clear_error(data, why):
    with pytest.raises(PcapError, match=why):
        read(data)


def test_lying_lengths_are_caught():
    data = bytearray(write(route_workload()))
    shb_len = struct.unpack_from("<I", data, 4)[0]
    idb_len = struct.unpack_from("<I", data, shb_len + 4)[0]
    epb = shb_len + idb_len
    bad = bytearray(data)
    struct.pack_into("<I", bad, epb + 4, 12)                 # block length < its content
    with pytest.raises(PcapError, match="damaged at byte"):
        read(bytes(bad))
    bad = bytearray(data)
    struct.pack_into("<I", bad, epb + 20, 60000)             # captured length > block
    with pytest.raises(PcapError, match="claims 60000 bytes"):
        read(bytes(bad))
    bad = bytearray(data)
    struct.pack_into("<I", bad, epb + 8, 7)                  # unknown interface
    with pytest.raises(PcapError, match="interface 7"):
        read(bytes(bad))


try:
    from hypothesis import HealthCheck, given, settings, strategies as st
except ImportError:   # pragma: no cover
    given = None


if given is not None:
    text = st.text(max_size=20)
    u32 = st.integers(0, 2**32 - 1)

    @st.composite
    def messages(draw):
        data = draw(st.binary(max_size=200))
        return Message(
            ts_ns=draw(st.integers(0, 2**62)), pid=draw(u32), tid=draw(u32), comm=draw(text),
            protocol=draw(st.integers(0, 31)),
            direction=draw(st.sampled_from([REQUEST, REPLY, NOTIFY])), data=data,
            length=draw(st.integers(0, 70000)), netns=draw(u32), cgroup=draw(st.integers(0, 2**64 - 1)),
            sock=draw(st.integers(0, 2**64 - 1)), portid=draw(u32), groups=draw(u32),
            syscall=draw(text), ret=draw(st.integers(-4095, 2**31)), dur_ns=draw(st.integers(0, 2**40)),
            lock_wait_ns=draw(st.integers(0, 2**40)), lock_holder_pid=draw(u32),
            lock_holder_comm=draw(text), skipped_parts=draw(u32), skipped_bytes=draw(u32),
            skipped_intr=draw(st.booleans()), split=draw(st.booleans()))

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(messages(), max_size=6))
    def test_any_message_round_trips(msgs):
        for m in msgs:
            if "\0" in m.comm:
                m.comm = m.comm.replace("\0", "")
        _, back = read(write(msgs, describe=None))
        assert back == msgs

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=400))
    def test_random_bytes_never_raise_anything_else(data):
        for blob in (data, b"\x0a\x0d\x0d\x0a" + data, b"\xd4\xc3\xb2\xa1" + data):
            try:
                read(blob)
            except PcapError:
                pass

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8))
    def test_flipped_bytes_never_raise_anything_else(flips):
        data = bytearray(write(route_workload()))
        for pos, value in flips:
            data[pos % len(data)] = value
        try:
            read(bytes(data))
        except PcapError:
            pass


# ------------------------------------------------------------ foreign files
def test_nlmon_style_ports_resolve_requests_to_their_replies():
    def foreign(data, ts, direction, length=None):
        return Message(ts_ns=ts, pid=0, tid=0, comm="?", protocol=0, direction=direction,
                       data=data, length=len(data) if length is None else length)
    add = nlmsg(24, 0x605, 7, rtmsg("198.51.100.0"))                 # nlmsg_pid 0
    tail = bytes(20)                                                # iproute2's padding
    echo = nlmsg(24, 0, 7, rtmsg("198.51.100.0"), portid=555)       # notification to a listener
    ack = nlmsg(2, 0x100, 7, struct.pack("=i", 0) + add[:16], portid=555)
    event = nlmsg(16, 0, 0, bytes(16))
    msgs = [foreign(add, 1, REQUEST), foreign(tail, 1, REQUEST, 0), foreign(echo, 2, REPLY),
            foreign(ack, 3, REPLY), foreign(event, 4, REPLY)]
    resolve_ports(msgs)
    assert [(m.direction, m.pid) for m in msgs] == [
        (REQUEST, 555), (REQUEST, 555), (NOTIFY, 0), (REPLY, 555), (NOTIFY, 0)]


def fixture(name):
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"{path} is not there (tests/fixtures/pcap/README.md says how to make it)")
    return path


def pairs(path):
    """(request type, flags, seq, final type, errno, parts) per answered request, in order."""
    return answered_requests(path)


def test_nlmon_fixture_has_the_same_pairs_as_nlbpfs_own_capture():
    """Both files captured the same workload in the same VM run (see the README there)."""
    nlmon, own = pairs(fixture("nlmon-route.pcap")), pairs(fixture("nlbpf-route.pcapng"))
    assert len(own) >= 8
    assert sorted(nlmon) == sorted(own)     # nlmon: when sent; nlbpf: when read


def test_nlmon_fixture_reads_without_pid_and_says_so():
    path = fixture("nlmon-route.pcap")
    out = subprocess.run(NLBPF + ["read", str(path), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    assert recs and all(r["comm"] == "?" for r in recs)
    assert out.stderr.count("no process information") == 1
    acks = [r for r in recs if r["type"] == "NLMSG_ERROR" and r["latency_us"] is not None]
    assert acks and all(r["pid"] == r["portid"] for r in acks)


# ------------------------------------------------------------ offline views
def test_offline_type_filter_keeps_requests_their_replies_and_notifications():
    flt = OfflineFilter(Filters(type=25))
    recs = [r for r in route_workload() if isinstance(r, Message)]
    kept = [r for r in recs if flt.message(r)]
    assert [(r.direction, r.nl_type) for r in kept] == [(REQUEST, 25), (REPLY, 2)]


def test_lat_bucket_matches_the_kernels_histogram():
    for v in (0, 1, 2, 3, 5, 1000, 1500, 123456789, 2**40):
        b = lat_bucket(v)
        assert b < 128
        if v > 3:
            assert bucket_mid_ns(b) <= v * 2 and bucket_mid_ns(b) >= v // 2


def test_top_counters_count_like_the_kernel():
    top = TopCounters()
    for rec in route_workload():
        top.add(rec)
    rows, types, where = top.snapshot()
    ip = rows[4242]
    # the last request is one cut short by the iovec (split): it counts too
    assert (ip["requests"], ip["msgs_out"], ip["msgs_in"], ip["dumps"]) == (4, 4, 4, 1)
    assert ip["errors"] == 1 and ip["lat_count"] == 3 and ip["dump_intr"] == 1
    assert ip["lock_wait_ns"] == 1200
    assert types[(4242, 0, 24)] == 2 and types[(4242, 0, 26)] == 1
    assert rows[99]["errors"] == 1 and rows[99]["msgs_in"] == 1     # ENOBUFS + notification
    assert where[4242] == (7, NETNS)


# ------------------------------------------------------------------- CLI
@pytest.fixture
def capfile():
    import tempfile
    # a directory other users can read (pytest's tmp_path is private)
    d = Path(tempfile.mkdtemp(prefix="nlbpf-pcap-"))
    d.chmod(0o755)
    path = d / "workload.pcapng"
    path.write_bytes(write(route_workload()))
    path.chmod(0o644)
    yield path
    shutil.rmtree(d)


def cli(*args, user=None):
    return subprocess.run(NLBPF + [str(a) for a in args], capture_output=True, text=True,
                          user=user, cwd="/")


def test_read_links_a_notification_recorded_before_its_request(tmp_path):
    # the syscall layer records a request when its sendmsg returns, which can be
    # after a listener has received the notification it raised
    add = nlmsg(24, 0x605, 10, rtmsg("198.51.100.0"))
    note = nlmsg(24, 0x600, 10, rtmsg("198.51.100.0"), portid=4242)
    path = tmp_path / "early.pcapng"
    path.write_bytes(write([
        msg(NOTIFY, note, ts=1_000_000, pid=99, tid=99, comm="ip monitor", groups=0x40),
        msg(REQUEST, add, ts=1_001_000),
        msg(REPLY, nlmsg(2, 0x100, 10, struct.pack("=i", 0) + add[:16], portid=4242),
            ts=1_002_000),
    ]))
    out = cli("read", path, "--json")
    assert out.returncode == 0, out.stderr
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["direction"] for r in recs] == ["request", "notify", "reply"]
    assert recs[1]["origin"] == {"pid": 4242, "comm": "ip", "seq": 10}


def test_read_views_as_json(capfile):
    trace = cli("read", capfile, "--json")
    assert trace.returncode == 0, trace.stderr
    recs = [json.loads(line) for line in trace.stdout.splitlines()]
    assert [r["direction"] for r in recs][:2] == ["request", "reply"]
    assert recs[0]["comm"] == "ip" and recs[0]["netns"] == NETNS and recs[0]["netns_name"] == "blue"
    assert recs[0]["ts"] == round((OFFSET + 1_000_000) / 1e9, 6)
    assert any(r["direction"] == "syscall" and r["error"] == "ENOBUFS" for r in recs)
    errors = cli("errors", "--read", capfile, "--json")
    errs = [json.loads(line) for line in errors.stdout.splitlines()]
    by_type = {r["type"]: r for r in errs}
    assert by_type["RTM_DELROUTE"]["error"] == "ESRCH"
    assert by_type["RTM_DELROUTE"]["extack"] == 'No such "route" = here'
    # no change was recorded while it ran: none is named
    assert by_type["RTM_GETROUTE"]["dump"] == {"parts": 3, "bytes": 120 + 36, "intr": True,
                                               "interrupted_by": []}
    assert by_type[None]["error"] == "ENOBUFS"
    assert "recording lost 3 events" in errors.stderr
    slow = cli("read", capfile, "--view", "slow", "--threshold", "10us", "--json")
    assert slow.returncode == 0, slow.stderr
    slows = [json.loads(line) for line in slow.stdout.splitlines()]
    assert {r["type"] for r in slows} == {"RTM_NEWROUTE", "RTM_DELROUTE", "RTM_GETROUTE"}
    assert all(r["latency_us"] == 10.0 and r["lock_wait_us"] >= 0 for r in slows)
    assert not cli("slow", "-r", capfile, "--threshold", "11us").stdout
    top = cli("top", "-r", capfile, "--json")
    intervals = [json.loads(line) for line in top.stdout.splitlines()]
    assert len(intervals) == 1 and intervals[0]["total_lost"] == 3
    row = {r["pid"]: r for r in intervals[0]["rows"]}[4242]
    assert row["requests"] == 4 and row["errors"] == 1 and row["comm"] == "ip"


def test_read_filters_like_the_probes(capfile):
    out = cli("read", capfile, "--json", "--type", "RTM_DELROUTE")
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["type"] for r in recs][:2] == ["RTM_DELROUTE", "NLMSG_ERROR"]
    out = cli("read", capfile, "--json", "--pid", "99")
    assert {json.loads(line)["pid"] for line in out.stdout.splitlines()} == {99}


def test_top_buckets_by_capture_time_with_interval(tmp_path):
    import dataclasses
    # the same workload, spread over 80 ms
    slower = [dataclasses.replace(r, ts_ns=r.ts_ns * 1000) for r in route_workload()]
    capfile = tmp_path / "slower.pcapng"
    capfile.write_bytes(write(slower))
    out = cli("read", capfile, "--view", "top", "-i", "0.02", "--json")
    intervals = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(intervals) >= 3
    assert sum(r["msgs_out"] for i in intervals for r in i["rows"] if r["pid"] == 4242) == 4
    assert all(i["interval_s"] == 0.02 for i in intervals)


@pytest.mark.parametrize("content,expect", [
    (b"", "is empty"),
    (b"garbage garbage garbage", "not a pcap or pcapng"),
    (None, "No such file"),
])
def test_bad_files_give_one_line(tmp_path, content, expect):
    path = tmp_path / "bad.pcap"
    if content is not None:
        path.write_bytes(content)
    out = cli("read", path)
    assert out.returncode == 1
    assert out.stderr.startswith("nlbpf: ") and expect in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 1


def test_damaged_file_prints_what_it_can_then_one_error(tmp_path):
    data = bytearray(write(route_workload()))
    data[len(data) // 2 + 1:len(data) // 2 + 5] = b"\xff\xff\xff\x7f"
    path = tmp_path / "damaged.pcapng"
    path.write_bytes(bytes(data))
    out = cli("read", path)
    assert "Traceback" not in out.stderr
    assert out.returncode in (0, 1)
    if out.returncode:
        assert out.stderr.strip().splitlines()[-1].startswith("nlbpf: ")


def test_truncated_file_is_a_partial_read_with_a_warning(tmp_path):
    data = write(route_workload())
    path = tmp_path / "cut.pcapng"
    path.write_bytes(data[:len(data) - 150])
    out = cli("read", path)
    assert out.returncode == 0 and out.stdout
    assert "cut short" in out.stderr and "Traceback" not in out.stderr


def test_record_refuses_json_and_needs_a_file():
    out = cli("record")
    assert out.returncode == 2 and "-w" in out.stderr and "Traceback" not in out.stderr
    out = cli("record", "-w", "/tmp/x.pcapng", "--json")
    assert out.returncode == 2 and "--json does not apply" in out.stderr


def test_record_as_non_root_says_why_and_leaves_no_file(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to nobody")
    tmp_path.chmod(0o777)
    target = tmp_path / "x.pcapng"
    out = cli("record", "-w", target, user="nobody")
    assert out.returncode == 1 and "needs root" in out.stderr
    assert not target.exists()


OFFLINE_PROBE = """
import sys
from nlbpf import cli
sys.argv = ["nlbpf"] + sys.argv[1:]
try:
    cli.main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print("BCC_LOADED" if "bcc" in sys.modules else "NO_BCC", code, file=sys.stderr)
"""


@pytest.mark.parametrize("view", ["trace", "errors", "slow", "top"])
def test_reading_needs_neither_root_nor_bcc(capfile, view):
    user = "nobody" if os.geteuid() == 0 else None
    out = subprocess.run([sys.executable, "-c", OFFLINE_PROBE, "read", str(capfile), "--view", view,
                          "--json", "--threshold", "1us"], capture_output=True, text=True, user=user, cwd="/",
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert "NO_BCC 0" in out.stderr, out.stderr
    assert out.stdout.strip()


# ---------------------------------------------------------------- Wireshark
@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark is not installed")
def test_wireshark_dissects_netlink_route_and_shows_the_process(capfile):
    out = subprocess.run(["tshark", "-r", str(capfile), "-T", "fields", "-E", "separator=|",
                          "-e", "netlink-route.nltype", "-e", "netlink.hdr_flags", "-e", "netlink.hdr_seq",
                          "-e", "netlink-route.rt_family", "-e", "frame.comment",
                          "-e", "frame.packet_flags_direction"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = [line.split("|") for line in out.stdout.splitlines()]
    routes = [r for r in rows if r[3]]
    assert routes, out.stdout
    first = routes[0]
    assert first[0].split(",")[0] == "24" and first[1].split(",")[0] == "0x0605"
    assert first[2].split(",")[0] == "10" and first[3] == "2"
    assert first[4].startswith("pid=4242 comm=ip tid=4242 dir=request netns=4026532288")
    assert int(first[5], 0) == 2                           # outbound
    assert any(r[4].startswith("event=syscall_error") for r in rows)
