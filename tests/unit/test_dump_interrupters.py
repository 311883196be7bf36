"""Who interrupted a dump: which requests are changes, which changes can move a dump's
generation, and which of them ran in its window (hand-built messages, no kernel)."""
import struct

import pyroute2.netlink.nfnetlink.nftsocket as nft
from pyroute2.netlink.rtnl import RTM_VALUES

from nlbpf.correlate import Correlator
from nlbpf.interrupts import (HOLD_NS, QUIET_NS, UNKNOWN_START_NS, Change, ChangeLog,
                              InterruptHold, reads)
from nlbpf.model import NOTIFY, REPLY, REQUEST, Message
from nlbpf.netlink import is_change
from nlbpf.output.fold import fold_key, outcome
from nlbpf.output.records import Decoder, change_record, interrupted_line

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR, RTM_GETROUTE = \
    16, 17, 18, 20, 22, 26
REQ, MULTI, ACK, DUMP, INTR = 0x1, 0x2, 0x4, 0x300, 0x10
MS = 1_000_000


def test_every_rtnetlink_new_del_and_set_is_a_change_and_no_get_is():
    assert len(RTM_VALUES) > 60
    for value, name in RTM_VALUES.items():
        verb = name[4:7]
        assert is_change(0, value) == (verb in ("NEW", "DEL", "SET")), name


def test_nftables_changes_are_every_message_but_the_gets():
    names = [n for n in dir(nft) if n.startswith("NFT_MSG_")]
    assert len(names) >= 20
    for name in names:
        value = (10 << 8) | getattr(nft, name)
        kernel_only = name in ("NFT_MSG_NEWGEN", "NFT_MSG_TRACE")
        assert is_change(12, value) == (not kernel_only and "_GET" not in name), name
    # not nftables (ipset, conntrack...), nor a family whose dumps check no generation
    assert not is_change(12, (1 << 8) | 0) and not is_change(16, 0x1c) and not is_change(6, 16)
    assert not is_change(0, 3) and not is_change(0, None)


def ifname_attr(name):
    raw = name.encode() + b"\0"
    return struct.pack("=HH", 4 + len(raw), 3) + raw + bytes(-len(raw) % 4)


def message(direction, type_, flags, seq, ts, payload=b"", sock=0x1, **kw):
    data = struct.pack("<IHHII", 16 + len(payload), type_, flags, seq, 0) + payload
    base = dict(pid=100, tid=100, comm="ip", protocol=0, netns=7, sock=sock, portid=100)
    base.update(kw)
    return Message(ts_ns=ts, direction=direction, data=data, length=len(data), **base)


def ack(seq, ts, errno=0, sock=0x1, **kw):
    return message(REPLY, 2, 0x100, seq, ts, struct.pack("<i", -errno) + bytes(16), sock=sock,
                   **kw)


def dump_txn(c, start, end, type_=RTM_GETLINK, sock=0xd, netns=7):
    c.feed(message(REQUEST, type_, REQ | DUMP, 1, start, bytes(16), sock=sock, pid=9,
                   comm="linkdump", netns=netns))
    c.feed(message(REPLY, RTM_NEWLINK, MULTI | INTR, 1, start + MS, bytes(16), sock=sock,
                   netns=netns))
    txn, done = c.feed(message(REPLY, 3, MULTI, 1, end, struct.pack("<i", 0), sock=sock,
                               netns=netns))
    assert done and txn.dump_intr
    return txn


def change(c, log, type_, seq, start, end, errno=0, name="sqa1", sock=0x1, **kw):
    txn, _ = c.feed(message(REQUEST, type_, REQ | ACK, seq, start,
                            bytes(16) + ifname_attr(name), sock=sock, **kw))
    log.add(txn)
    c.feed(ack(seq, end, errno, sock=sock, **kw))
    return txn


def test_the_changes_named_are_those_that_ran_in_the_dumps_window():
    c, log = Correlator(), ChangeLog()
    change(c, log, RTM_NEWLINK, 10, 100 * MS, 101 * MS, name="before")        # ended before
    change(c, log, RTM_NEWLINK, 11, 104 * MS, 106 * MS, name="during")
    change(c, log, RTM_DELLINK, 12, 109 * MS, 140 * MS, name="straddles")     # began inside
    change(c, log, RTM_NEWLINK, 13, 105 * MS, 105 * MS + 100, errno=17, name="failed")
    change(c, log, RTM_NEWLINK, 0, 105 * MS, 105 * MS + 100, errno=19, name="probe")
    change(c, log, RTM_NEWLINK, 14, 105 * MS, 106 * MS, name="elsewhere", netns=8)
    change(c, log, RTM_NEWADDR, 15, 105 * MS, 106 * MS, name="an address")   # another table
    change(c, log, RTM_NEWLINK, 16, 111 * MS, 112 * MS, name="after")
    dump = dump_txn(c, 103 * MS, 110 * MS)
    named = [ch.msg for ch in log.named(dump)]
    assert [m.seq for m in named] == [11, 12]


def test_a_change_seen_only_at_its_ack_began_at_most_a_handlers_time_before():
    c, log = Correlator(), ChangeLog()
    # the socket layer: no start, dated by its ACK
    for seq, at in ((20, 110 * MS + UNKNOWN_START_NS - MS), (21, 110 * MS + UNKNOWN_START_NS + MS),
                    (22, 102 * MS)):
        req = message(REQUEST, RTM_DELLINK, REQ | ACK, seq, at, bytes(16), start_known=False,
                      sock=0x20 + seq)
        c.feed(req)
        txn, done = c.feed(ack(seq, at, sock=0x20 + seq))
        assert done
        log.add(txn)
    dump = dump_txn(c, 103 * MS, 110 * MS)
    assert [ch.msg.seq for ch in log.named(dump)] == [20]


def test_address_dumps_are_moved_by_links_too_but_link_dumps_not_by_addresses():
    getlink = message(REQUEST, RTM_GETLINK, REQ | DUMP, 1, 0)
    getaddr = message(REQUEST, RTM_GETADDR, REQ | DUMP, 1, 0)
    newlink = message(REQUEST, RTM_NEWLINK, REQ | ACK, 2, 0)
    newaddr = message(REQUEST, RTM_NEWADDR, REQ | ACK, 2, 0)
    assert reads(getlink, newlink) and reads(getaddr, newlink) and reads(getaddr, newaddr)
    assert not reads(getlink, newaddr)
    assert not reads(getlink, message(REQUEST, RTM_NEWLINK, REQ, 2, 0, netns=99))
    assert not reads(getlink, message(REQUEST, RTM_NEWLINK, REQ, 2, 0, protocol=16))


def test_a_change_the_kernel_made_itself_is_kept_and_named_as_the_kernels():
    c, log = Correlator(), ChangeLog()
    note = message(NOTIFY, RTM_DELLINK, 0, 0, 105 * MS, bytes(16) + ifname_attr("vk3"),
                   comm="kworker/u8:2", pid=37, in_handler=False, groups=1)
    in_handler = message(NOTIFY, RTM_DELLINK, 0, 0, 105 * MS, bytes(16), in_handler=True)
    unknown = message(NOTIFY, RTM_DELLINK, 0, 0, 105 * MS, bytes(16))     # syscall layer
    assert log.add_kernel(note) and not log.add_kernel(in_handler)
    assert not log.add_kernel(unknown)
    dump = dump_txn(c, 103 * MS, 110 * MS)
    named = [change_record(ch, Decoder(live_families=False), 0) for ch in log.named(dump)]
    assert named == [{"ts": 0.105, "by": "kernel", "pid": 37, "comm": "kworker/u8:2",
                      "netns": 7, "type": "RTM_DELLINK", "seq": None, "what": "dev vk3"}]
    assert interrupted_line(named) == \
        "interrupted by: RTM_DELLINK dev vk3 by the kernel (kworker/u8:2 37)"


def test_the_text_names_three_and_counts_the_rest():
    c, log = Correlator(), ChangeLog()
    for i in range(5):
        change(c, log, RTM_NEWLINK, 30 + i, 104 * MS + i, 105 * MS, name=f"sqa{i}",
               sock=0x40 + i, pid=200 + i)
    dump = dump_txn(c, 103 * MS, 110 * MS)
    named = [change_record(ch, Decoder(live_families=False), 0) for ch in log.named(dump)]
    assert len(named) == 5 and named[0]["what"] == "dev sqa0" and named[0]["seq"] == 30
    assert interrupted_line(named) == (
        "interrupted by: RTM_NEWLINK dev sqa0 by ip 200, RTM_NEWLINK dev sqa1 by ip 201, "
        "RTM_NEWLINK dev sqa2 by ip 202 (and 2 more)")
    assert interrupted_line([]).startswith("interrupted by: no change this run saw")


def test_the_log_keeps_what_a_running_dump_may_need_and_no_more():
    log = ChangeLog(keep_ns=10 * MS, keep_max=3)
    c = Correlator()
    for i in range(5):
        change(c, log, RTM_NEWLINK, 50 + i, i * MS, i * MS + 10, sock=0x60 + i)
    assert [ch.msg.seq for ch in log.changes] == [52, 53, 54]
    change(c, log, RTM_NEWLINK, 60, 30 * MS, 30 * MS + 10, sock=0x70)
    assert [ch.msg.seq for ch in log.changes] == [60]
    # not a change: not kept
    txn, _ = c.feed(message(REQUEST, RTM_GETLINK, REQ, 61, 31 * MS, bytes(16), sock=0x71))
    assert not log.add(txn)


def test_interrupted_dumps_wait_for_the_records_clock_or_a_quiet_while():
    hold = InterruptHold()
    hold.hold(1000, "a")
    hold.hold(2000, "b")
    assert hold.due(records_ns=1000 + HOLD_NS - 1) == []
    # the wall clock alone: only after a quiet while (the reader may lag the kernel)
    assert hold.due(wall_ns=1000 + HOLD_NS) == []
    assert hold.due(records_ns=1000 + HOLD_NS) == ["a"]
    assert hold.due(wall_ns=2000 + HOLD_NS + QUIET_NS) == ["b"]
    hold.hold(3000, "c")
    assert hold.due(everything=True) == ["c"]


def test_an_interrupted_dump_folds_as_DUMP_INTR_not_None():
    rec = {"comm": "linkdump", "protocol": "route", "type": "RTM_GETLINK", "error": None,
           "dump": {"intr": True}}
    assert outcome(rec) == "DUMP_INTR"
    assert fold_key(rec)[4] == "DUMP_INTR"
    assert outcome({"error": "ENODEV"}) == "ENODEV"


def test_a_link_change_is_named_by_its_name_and_kind_not_its_state():
    kind = b"veth\0"
    info = struct.pack("=HH", 4 + len(kind), 1) + kind + bytes(-len(kind) % 4)
    attrs = (ifname_attr("vk3") + struct.pack("=HHI", 8, 4, 1500)            # IFLA_MTU
             + struct.pack("=HH", 4 + len(info), 18) + info)                   # IFLA_LINKINFO
    ifinfo = struct.pack("=BxHiII", 0, 1, 326, 0x1002, 0)
    note = message(NOTIFY, RTM_DELLINK, 0, 0, 105 * MS, ifinfo + attrs, in_handler=False,
                   groups=1)
    rec = change_record(Change(note, kernel=True), Decoder(live_families=False), 0)
    assert rec["what"] == "dev vk3 kind veth", rec
    by_index = message(REQUEST, RTM_DELLINK, REQ | ACK, 9, 0,
                       struct.pack("=BxHiII", 0, 0, 855, 0, 0))
    rec = change_record(Change(by_index), Decoder(live_families=False), 0)
    assert rec["what"] == "index 855", rec
