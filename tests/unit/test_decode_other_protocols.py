"""Connector, kobject uevents, audit, selinux: the non-rtnetlink corners."""
import struct

from nlbpf.decode import decode


def nlmsg(mtype, body, flags=0, seq=5):
    return struct.pack("=IHHII", 16 + len(body), mtype, flags, seq, 0) + body


def test_connector_proc_fork_event():
    # cn_msg {idx=CN_IDX_PROC, val=CN_VAL_PROC} + proc_event (fork), in an
    # NLMSG_DONE as the connector always sends
    ev = struct.pack("=IIIIHH", 1, 1, 5, 0, 40, 0) + \
        struct.pack("=IIQ", 1, 3, 123456789) + struct.pack("=IIII", 100, 100, 200, 201)
    d = decode(11, nlmsg(3, ev))
    assert d.protocol_name == "connector" and d.type_name == "NLMSG_DONE"
    assert d.errno is None                    # not the end of a dump
    assert d.fields["what"] == "PROC_EVENT_FORK"
    assert d.fields["parent_pid"] == 100 and d.fields["child_tgid"] == 201
    assert d.fields["timestamp_ns"] == 123456789
    assert d.summary() == ("cn idx 1 val 1 PROC_EVENT_FORK parent_pid=100 "
                           "parent_tgid=100 child_pid=200 child_tgid=201")


def test_kernel_uevent_is_not_nlmsghdr_framed():
    u = (b"add@/devices/virtual/net/veth9\0ACTION=add\0"
         b"DEVPATH=/devices/virtual/net/veth9\0SUBSYSTEM=net\0"
         b"INTERFACE=veth9\0IFINDEX=9\0SEQNUM=4242\0")
    d = decode(15, u)
    assert d.type_name == "uevent" and d.length == len(u)
    assert d.fields == {"action": "add", "devpath": "/devices/virtual/net/veth9"}
    assert d.attrs["SUBSYSTEM"] == "net" and d.attrs["IFINDEX"] == "9"
    assert d.summary() == ("add /devices/virtual/net/veth9 SUBSYSTEM=net "
                           "INTERFACE=veth9 SEQNUM=4242")
    r = decode(15, b"remove@/devices/x\0ACTION=remove\0")
    assert r.fields["action"] == "remove"


def test_audit_text_and_selinux():
    a = b'audit(1700000000.123:42): pid=1 uid=0 msg="op=test"'
    d = decode(9, nlmsg(1107, a))
    assert d.type_name == "AUDIT_USER_AVC"
    assert d.fields == {"text": a.decode()}
    assert d.summary() == a.decode()      # after its type, which the line says first
    s = decode(7, nlmsg(0x10, struct.pack("=i", 1)))
    assert s.type_name == "SELNL_MSG_SETENFORCE" and s.fields == {"val": 1}
    p = decode(7, nlmsg(0x11, struct.pack("=I", 7)))
    assert p.type_name == "SELNL_MSG_POLICYLOAD" and p.fields == {"seqno": 7}
