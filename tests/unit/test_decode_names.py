"""Flag and errno names as the kernel/strace spell them."""
import struct

import pytest

from nlbpf.decode import decode, errno_name, flag_names, strerror


@pytest.mark.parametrize("flags,mtype,proto,expected", [
    # GET requests: ROOT|MATCH is NLM_F_DUMP
    (0x301, 18, 0, ["NLM_F_REQUEST", "NLM_F_DUMP"]),
    (0x701, 26, 0, ["NLM_F_REQUEST", "NLM_F_DUMP", "NLM_F_ATOMIC"]),
    (0x101, 22, 0, ["NLM_F_REQUEST", "NLM_F_ROOT"]),
    (0x201, 30, 0, ["NLM_F_REQUEST", "NLM_F_MATCH"]),
    # NEW requests
    (0x605, 24, 0, ["NLM_F_REQUEST", "NLM_F_ACK", "NLM_F_EXCL", "NLM_F_CREATE"]),
    (0x905, 24, 0, ["NLM_F_REQUEST", "NLM_F_ACK", "NLM_F_REPLACE",
                    "NLM_F_APPEND"]),
    (0x501, 16, 0, ["NLM_F_REQUEST", "NLM_F_REPLACE", "NLM_F_CREATE"]),
    # DEL requests
    (0x105, 25, 0, ["NLM_F_REQUEST", "NLM_F_ACK", "NLM_F_NONREC"]),
    (0x205, 29, 0, ["NLM_F_REQUEST", "NLM_F_ACK", "NLM_F_BULK"]),
    # RTM_DELACTION takes the GET modifiers (as strace decodes it)
    (0x301, 49, 0, ["NLM_F_REQUEST", "NLM_F_DUMP"]),
    # SET has no modifier set: left as hex
    (0x105, 19, 0, ["NLM_F_REQUEST", "NLM_F_ACK", "0x100"]),
    # NLMSG_ERROR / NLMSG_DONE
    (0x300, 2, 0, ["NLM_F_CAPPED", "NLM_F_ACK_TLVS"]),
    (0x202, 3, 12, ["NLM_F_MULTI", "NLM_F_ACK_TLVS"]),
    # the ones that mean the same everywhere
    (0x3F, 24, 0, ["NLM_F_REQUEST", "NLM_F_MULTI", "NLM_F_ACK", "NLM_F_ECHO",
                   "NLM_F_DUMP_INTR", "NLM_F_DUMP_FILTERED"]),
    (0x12, 16, 0, ["NLM_F_MULTI", "NLM_F_DUMP_INTR"]),
    # leftover bits
    (0x1001, 24, 0, ["NLM_F_REQUEST", "0x1000"]),
    (0xF040, 26, 0, ["0xf040"]),
    # other protocols
    (0x301, 20, 4, ["NLM_F_REQUEST", "NLM_F_DUMP"]),                 # sock_diag
    (0x401, 0xA00, 12, ["NLM_F_REQUEST", "NLM_F_CREATE"]),           # NFT_MSG_NEWTABLE
    (0x301, 0xA01, 12, ["NLM_F_REQUEST", "NLM_F_DUMP"]),             # NFT_MSG_GETTABLE
    (0x105, 0xA02, 12, ["NLM_F_REQUEST", "NLM_F_ACK", "NLM_F_NONREC"]),
    (0x301, 0x101, 12, ["NLM_F_REQUEST", "NLM_F_DUMP"]),             # IPCTNL_MSG_CT_GET
    (0x301, 0x12, 6, ["NLM_F_REQUEST", "NLM_F_DUMP"]),               # XFRM_MSG_GETSA
    (0x601, 0x10, 6, ["NLM_F_REQUEST", "NLM_F_EXCL", "NLM_F_CREATE"]),
    (0x301, 0x10, 16, ["NLM_F_REQUEST", "NLM_F_DUMP"]),              # genl request
    (0x300, 1000, 9, ["0x300"]),                                     # audit: none
])
def test_flag_names(flags, mtype, proto, expected):
    assert flag_names(flags, mtype, proto) == expected


def test_flag_names_explicit_kind_and_junk():
    assert flag_names(0x300, kind="ack") == ["NLM_F_CAPPED", "NLM_F_ACK_TLVS"]
    assert flag_names(0x300, kind="get") == ["NLM_F_DUMP"]
    assert flag_names(0x300) == ["0x300"]
    assert flag_names(0) == []
    assert flag_names(None) == []


def test_decoded_flags_follow_the_message():
    # the same bits read differently on a GET and a NEW route request
    get = decode(0, struct.pack("=IHHII", 28, 26, 0x301, 1, 0) + bytes(12))
    new = decode(0, struct.pack("=IHHII", 28, 24, 0x301, 1, 0) + bytes(12))
    assert get.flag_names == ["NLM_F_REQUEST", "NLM_F_DUMP"]
    assert new.flag_names == ["NLM_F_REQUEST", "NLM_F_REPLACE", "NLM_F_EXCL"]
    assert get.kind == "get" and new.kind == "new"


@pytest.mark.parametrize("n,name", [
    (1, "EPERM"), (2, "ENOENT"), (3, "ESRCH"), (4, "EINTR"), (11, "EAGAIN"),
    (16, "EBUSY"), (17, "EEXIST"), (19, "ENODEV"), (22, "EINVAL"),
    (35, "EDEADLK"), (61, "ENODATA"), (90, "EMSGSIZE"),
    (93, "EPROTONOSUPPORT"), (95, "EOPNOTSUPP"), (97, "EAFNOSUPPORT"),
    (99, "EADDRNOTAVAIL"), (101, "ENETUNREACH"), (105, "ENOBUFS"),
    (110, "ETIMEDOUT"), (113, "EHOSTUNREACH"), (133, "EHWPOISON"),
    (512, "ERESTARTSYS"), (524, "ENOTSUPP"),
    (-95, "EOPNOTSUPP"), (-22, "EINVAL"),
])
def test_errno_names_are_the_kernels(n, name):
    assert errno_name(n) == name


def test_errno_edge_cases():
    assert errno_name(0) is None
    assert errno_name(41) == "errno 41" and errno_name(58) == "errno 58"
    assert errno_name(9999) == "errno 9999"
    assert errno_name("x") is None
    assert strerror(95) == "Operation not supported"
    assert strerror(-3) == "No such process"
    assert strerror(524) == "Operation is not supported"
    assert strerror(0) == "Success"


def _err(code, protocol=0):
    body = struct.pack("=i", code) + struct.pack("=IHHII", 16, 24, 5, 9, 0)
    return decode(protocol, struct.pack("=IHHII", 16 + len(body), 2, 0x100, 9, 1) + body)


def test_error_messages_use_kernel_names():
    d = _err(-95)
    assert d.errno == 95 and d.error == "EOPNOTSUPP"
    assert d.strerror == "Operation not supported"
    assert d.summary() == "EOPNOTSUPP (Operation not supported)"
    assert _err(-35).error == "EDEADLK"
    assert _err(-524).summary() == "ENOTSUPP (Operation is not supported)"
    ack = _err(0)
    assert ack.errno == 0 and ack.error is None and ack.summary() == "ack"
    assert ack.flag_names == ["NLM_F_CAPPED"]
    assert ack.echoed.type_name == "RTM_NEWROUTE" and ack.echoed.seq == 9


def test_done_with_error_and_extack():
    tlv = struct.pack("=HH", 12, 1) + b"too big\0"
    body = struct.pack("=i", -90) + tlv
    d = decode(0, struct.pack("=IHHII", 16 + len(body), 3, 0x202, 5, 7) + body)
    assert d.type_name == "NLMSG_DONE"
    assert d.errno == 90 and d.error == "EMSGSIZE"
    assert d.extack == "too big"
    assert d.flag_names == ["NLM_F_MULTI", "NLM_F_ACK_TLVS"]
    assert d.summary() == 'done EMSGSIZE "too big"'
    # a DONE without the status word
    empty = decode(0, struct.pack("=IHHII", 16, 3, 2, 5, 7))
    assert empty.errno is None and empty.summary() == "done"


def test_extack_offsets_and_missing_attributes_are_named():
    req_body = bytes([2, 24, 0, 0, 254, 3, 0, 1]) + struct.pack("=I", 0) + \
        struct.pack("=HH", 8, 1) + bytes([10, 9, 0, 1]) + \
        struct.pack("=HH", 8, 4) + struct.pack("=I", 1)
    req = struct.pack("=IHHII", 16 + len(req_body), 24, 0x605, 3, 0) + req_body
    tlvs = struct.pack("=HH", 12, 1) + b"bad dst\0" + \
        struct.pack("=HHI", 8, 2, 28) + struct.pack("=HHI", 8, 5, 5) + \
        struct.pack("=HH", 24, 4) + struct.pack("=HHI", 8, 1, 4) + \
        struct.pack("=HHQ", 12, 5, 32)
    body = struct.pack("=i", -22) + req + tlvs
    d = decode(0, struct.pack("=IHHII", 16 + len(body), 2, 0x200, 3, 9) + body)
    assert d.extack == "bad dst"
    ea = d.extack_attrs
    assert ea["NLMSGERR_ATTR_OFFS"] == 28 and ea["offending_attr"] == "RTA_DST"
    assert ea["NLMSGERR_ATTR_MISS_TYPE"] == 5 and ea["missing_attr"] == "RTA_GATEWAY"
    assert ea["NLMSGERR_ATTR_POLICY"] == {"NL_POLICY_TYPE_ATTR_TYPE": 4,
                                          "NL_POLICY_TYPE_ATTR_MAX_VALUE_U": 32}
    assert d.echoed.attrs == {"RTA_DST": "10.9.0.1", "RTA_OIF": 1}
    assert d.malformed is None

    # the same with the policy nest's length off by four
    bad = body.replace(struct.pack("=HH", 24, 4), struct.pack("=HH", 20, 4))
    b = decode(0, struct.pack("=IHHII", 16 + len(bad), 2, 0x200, 3, 9) + bad)
    assert b.extack == "bad dst"
    assert b.malformed == ("attribute NL_POLICY_TYPE_ATTR_MAX_VALUE_U length 12 "
                           "overruns its container (8 bytes left)")
