"""Request/reply pairing, from hand-built messages (no kernel needed)."""
import struct

from nlbpf.capture.records import Extack
from nlbpf.correlate import Correlator
from nlbpf.model import Message, REQUEST, REPLY, NOTIFY, FROM_USER, TO_USER

RTM_NEWROUTE, RTM_GETROUTE, RTM_GETLINK, RTM_NEWLINK = 24, 26, 18, 16
REQ, MULTI, ACK, DUMP, INTR = 0x1, 0x2, 0x4, 0x300, 0x10


def raw(type_, flags, seq, payload=b"", pid=0):
    return struct.pack("<IHHII", 16 + len(payload), type_, flags, seq, pid) + payload


def msg(direction, type_, flags, seq, ts, sock=0xffff1, payload=b"", **kw):
    data = raw(type_, flags, seq, payload)
    defaults = dict(pid=100, tid=100, comm="ip", protocol=0, netns=1, sock=sock, portid=100)
    defaults.update(kw)
    return Message(ts_ns=ts, direction=direction, data=data, length=len(data), **defaults)


def err(errno_):
    return struct.pack("<i", -errno_) + raw(RTM_NEWROUTE, REQ | ACK, 7)


def test_ack_completes_request_with_latency_and_errno_zero():
    c = Correlator()
    req = msg(REQUEST, RTM_NEWROUTE, REQ | ACK, 7, ts=1000, dur_ns=50)
    assert c.feed(req) == (c.pending[(("sk", 0xffff1), 7)], False)
    ack = msg(REPLY, 2, 0x100, 7, ts=2000, dur_ns=10, payload=err(0))
    txn, done = c.feed(ack)
    assert done and txn.request is req and txn.final is ack
    assert txn.errno == 0 and txn.latency_ns == 1000   # reply crossed at 2000
    assert not c.pending


def test_a_message_from_another_process_never_answers_a_request():
    """Process B sends A's port an NLMSG_ERROR (ENOENT) with A's seq: the probes mark it
    as from a process (its port is not the kernel's 0), and only the kernel's reply
    completes A's request."""
    c = Correlator()
    req = msg(REQUEST, RTM_GETLINK, REQ | ACK, 7, ts=1000)
    c.feed(req)
    forged = msg(FROM_USER, 2, 0, 7, ts=1500, payload=struct.pack("<i", -2) + raw(18, 5, 7),
                 peer_portid=4242, peer_pid=4242)
    assert c.feed(forged) == (None, False)
    assert c.feed(msg(REPLY, RTM_NEWLINK, 0, 7, ts=1600)) == (c.pending[(("sk", 0xffff1), 7)],
                                                              False)
    txn, done = c.feed(msg(REPLY, 2, 0x100, 7, ts=2000, payload=err(0)))
    assert done and txn.request is req and txn.errno == 0 and txn.parts == 1


def test_what_a_process_sends_another_is_not_a_request():
    c = Correlator()
    assert c.feed(msg(TO_USER, RTM_GETLINK, REQ | ACK, 7, ts=1000, peer_portid=4242)) == \
        (None, False)
    assert not c.pending


def test_requests_nothing_answers_are_bounded_in_number_whatever_their_times():
    """A capture whose clock jumps about: a young request at the front of the queue
    stops expiry there, and the waiting table is still bounded."""
    c = Correlator(pending_max=100)
    c.feed(msg(REQUEST, RTM_GETLINK, REQ | ACK, 1, ts=10**15))
    for seq in range(2, 1000):
        c.feed(msg(REQUEST, RTM_GETLINK, REQ | ACK, seq, ts=seq % 7 * 10**14))
        assert len(c.pending) <= 100
    assert len(c.pending) + c.expired == 999


def test_a_request_the_kernel_ignored_waits_for_nothing():
    """nlmsg_len past the end of its buffer: the kernel stops there and answers nothing."""
    c = Correlator()
    assert c.feed(msg(REQUEST, RTM_GETLINK, REQ | ACK, 7, ts=1000, overlong=True)) == (None, False)
    assert not c.pending


def test_error_reply_gives_positive_errno_and_tracepoint_extack():
    c = Correlator()
    req = msg(REQUEST, RTM_NEWROUTE, REQ | ACK, 7, ts=1000, dur_ns=500)
    c.add_extack(Extack(ts_ns=1200, pid=100, tid=100, sock=0xffff1, text="Invalid prefix"))
    c.feed(req)
    txn, done = c.feed(msg(REPLY, 2, 0, 7, ts=3000, payload=err(22)))
    assert done and txn.errno == 22 and txn.extack == "Invalid prefix"


def test_extack_outside_the_send_window_is_not_attached():
    c = Correlator()
    c.add_extack(Extack(ts_ns=5000, pid=100, tid=100, sock=0xffff1, text="other"))
    c.feed(msg(REQUEST, RTM_NEWROUTE, REQ | ACK, 7, ts=1000, dur_ns=500))
    txn, _ = c.feed(msg(REPLY, 2, 0, 7, ts=9000, payload=err(22)))
    assert txn.extack is None


def test_dump_counts_parts_bytes_and_intr_including_kernel_skipped_ones():
    c = Correlator()
    c.feed(msg(REQUEST, RTM_GETLINK, REQ | DUMP, 9, ts=0))
    for i in range(3):
        txn, done = c.feed(msg(REPLY, RTM_NEWLINK, MULTI | (INTR if i == 1 else 0), 9, ts=10 + i,
                               payload=b"x" * 100))
        assert not done
    done_msg = msg(REPLY, 3, MULTI, 9, ts=20, payload=struct.pack("<i", 0),
                   skipped_parts=5, skipped_bytes=500)
    txn, done = c.feed(done_msg)
    assert done
    assert txn.parts == 8 and txn.part_bytes == 3 * 116 + 500
    assert txn.dump_intr and txn.errno == 0


def test_same_seq_on_two_sockets_of_one_process_does_not_mix():
    c = Correlator()
    a = msg(REQUEST, RTM_NEWROUTE, REQ | ACK, 5, ts=0, sock=1)
    b = msg(REQUEST, RTM_GETROUTE, REQ, 5, ts=1, sock=2)
    c.feed(a)
    c.feed(b)
    txn, done = c.feed(msg(REPLY, RTM_NEWROUTE, 0, 5, ts=2, sock=2))
    assert done and txn.request is b          # lone data reply, no ACK asked: final
    txn, done = c.feed(msg(REPLY, 2, 0x100, 5, ts=3, sock=1, payload=err(0)))
    assert done and txn.request is a


def test_data_reply_is_not_final_when_an_ack_was_asked():
    c = Correlator()
    c.feed(msg(REQUEST, RTM_GETLINK, REQ | ACK, 3, ts=0))
    txn, done = c.feed(msg(REPLY, RTM_NEWLINK, 0, 3, ts=1))
    assert not done and txn.parts == 1
    txn, done = c.feed(msg(REPLY, 2, 0x100, 3, ts=2, payload=err(0)))
    assert done


def test_notifications_and_orphans_do_not_pair():
    c = Correlator()
    c.feed(msg(REQUEST, RTM_NEWROUTE, REQ | ACK, 7, ts=0))
    assert c.feed(msg(NOTIFY, RTM_NEWROUTE, 0, 7, ts=1, groups=0x40)) == (None, False)
    assert c.feed(msg(REPLY, 2, 0, 99, ts=2, payload=err(0))) == (None, False)
    assert len(c.pending) == 1


def test_unanswered_requests_expire():
    c = Correlator(expire_ns=100)
    c.feed(msg(REQUEST, RTM_NEWROUTE, REQ, 1, ts=0))
    c.feed(msg(REQUEST, RTM_NEWROUTE, REQ, 2, ts=150))
    gone = c.expire(now_ns=160)
    assert [t.request.seq for t in gone] == [1] and c.expired == 1
    assert len(c.pending) == 1


def test_offline_messages_pair_by_port_when_there_is_no_socket():
    c = Correlator()
    c.feed(msg(REQUEST, RTM_NEWROUTE, REQ | ACK, 4, ts=0, sock=0, portid=4242))
    txn, done = c.feed(msg(REPLY, 2, 0, 4, ts=5, sock=0, portid=4242, payload=err(3)))
    assert done and txn.errno == 3


def test_a_notification_seen_before_its_request_waits_for_it():
    # syscall layer: a listener's recvmsg can return the notification before the
    # requester's sendmsg returns, which is when the request is recorded
    from nlbpf.correlate import NotificationHold, origin
    c = Correlator()
    hold = NotificationHold(c, wait_ns=1000)
    note = msg(NOTIFY, RTM_NEWROUTE, 0, 7, ts=10, pid=55, comm="monitor")
    note.data = raw(RTM_NEWROUTE, 0, 7, pid=100)          # names port 100, seq 7
    assert hold.hold(note)
    assert hold.release(now_ns=20) == []                  # its request has not come
    c.feed(msg(REQUEST, RTM_NEWROUTE, REQ | ACK, 7, ts=5, portid=100))
    assert hold.release(now_ns=21) == [note] and not hold.held
    assert origin(c, note) == {"pid": 100, "comm": "ip", "seq": 7}


def test_held_notifications_go_when_their_wait_ends_or_the_input_does():
    from nlbpf.correlate import NotificationHold
    c = Correlator()
    hold = NotificationHold(c, wait_ns=1000)
    kernel = msg(NOTIFY, RTM_NEWLINK, 0, 0, ts=10)         # names no requester: never held
    assert not hold.hold(kernel)
    notes = []
    for i, ts in enumerate((10, 500)):
        n = msg(NOTIFY, RTM_NEWROUTE, 0, 9, ts=ts)
        n.data = raw(RTM_NEWROUTE, 0, 9, pid=4000 + i)
        assert hold.hold(n)
        notes.append(n)
    assert hold.release(now_ns=1009) == []
    assert hold.release(now_ns=1010) == [notes[0]]
    assert hold.release(everything=True) == [notes[1]] and not hold.held


def test_a_handlers_notification_names_the_requests_seq_not_its_own():
    # kernel layer: the notification is sent inside the requester's handler, in its
    # thread; its own seq is 0 (RTM_NEWLINK's are), the request's is what ip used
    from nlbpf.correlate import origin
    c = Correlator()
    c.feed(msg(REQUEST, RTM_NEWROUTE, REQ | ACK, 1234, ts=5, tid=638, pid=638))
    c.feed(msg(REQUEST, 16, REQ | ACK, 1235, ts=6, tid=700, pid=700))     # another thread
    note = msg(NOTIFY, RTM_NEWROUTE, 0, 0, ts=10, tid=638, pid=638, in_handler=True)
    assert origin(c, note) == {"pid": 638, "comm": "ip", "seq": 1234}
    # a handler's notification with no request seen (started before the trace)
    lone = msg(NOTIFY, RTM_NEWROUTE, 0, 0, ts=10, tid=900, pid=900, in_handler=True)
    assert origin(c, lone) == {"pid": 900, "comm": "ip", "seq": None}
