"""nlbpf/netlink.py: the header's constants (pyroute2's values) and the final-reply rule."""
import struct

import pyroute2.netlink as pr

from nlbpf import netlink as nl


def test_constants_are_pyroute2s():
    names = [n for n in dir(nl) if n.startswith(("NLM_F_", "NLMSG_"))
             and n not in ("NLMSG_NAMES", "NLMSG_HDRLEN")]
    assert len(names) >= 20
    for name in names:
        assert getattr(nl, name) == getattr(pr, name), name
    assert nl.NLMSG_HDRLEN == struct.calcsize("=IHHII")       # struct nlmsghdr


def test_the_final_reply():
    # an error or ACK, and a dump's end, always
    assert nl.is_final_reply(nl.NLMSG_ERROR, 0, nl.NLM_F_ACK)
    assert nl.is_final_reply(nl.NLMSG_DONE, nl.NLM_F_MULTI, nl.NLM_F_DUMP)
    # a dump part never
    assert not nl.is_final_reply(16, nl.NLM_F_MULTI, nl.NLM_F_DUMP)
    # a single reply (RTM_NEWLINK to a GETLINK): only if no ACK was asked for
    assert nl.is_final_reply(16, 0, nl.NLM_F_REQUEST)
    assert not nl.is_final_reply(16, 0, nl.NLM_F_REQUEST | nl.NLM_F_ACK)


def test_final_status():
    err = struct.pack("=IHHII", 36, nl.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -3) + bytes(16)
    assert nl.final_status(nl.NLMSG_ERROR, err) == 3
    ack = err[:16] + struct.pack("=i", 0) + err[20:]
    assert nl.final_status(nl.NLMSG_ERROR, ack) == 0
    assert nl.final_status(nl.NLMSG_DONE, err[:16]) == 0
    assert nl.final_status(nl.NLMSG_ERROR, err[:18]) is None
    assert nl.final_status(16, err) is None
