"""Programs that bcc cannot load itself: tp_btf tracepoints, task iterators, and
tracepoint programs that call a kfunc.

bcc (0.26) compiles the C and creates the maps, but loads tracing programs
only as fentry/fexit/LSM. The socket-tracepoint layer needs two more kinds:

  tp_btf  a tracepoint whose arguments are typed kernel pointers, so the
          program reads struct fields with plain loads (checked against BTF by
          the verifier) instead of a bpf_probe_read_kernel() call each: on this
          kind of machine a helper call costs ~40 ns, and a hook fires for every
          netlink message
  iter    a task iterator: a program run over every thread when its file is
          read, which is how `slow` looks for threads stuck in a netlink call
  kfunc   bpf_rdonly_cast, which bcc cannot emit (patch_kfuncs): the socket
          layer reads message headers through it, and the syscall layer's
          entry probes walk fd -> socket with it (plain tracepoint programs)

All are loaded here from the instructions bcc compiled (map references are
already resolved to this process's map fds), with bpf(2) directly.
"""
import ctypes as ct
import errno
import os
import struct

from ..errors import NlbpfError

SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine)
BPF_PROG_LOAD, BPF_RAW_TRACEPOINT_OPEN, BPF_LINK_CREATE, BPF_ITER_CREATE = 5, 17, 28, 33
BPF_PROG_TYPE_TRACEPOINT, BPF_PROG_TYPE_TRACING = 5, 26
BPF_TRACE_RAW_TP, BPF_TRACE_ITER = 23, 28
ATTR_SIZE = 144             # bpf_attr as this code fills it; the kernel takes any size up to its own
LOG_SIZE = 1 << 20

_libc = ct.CDLL(None, use_errno=True)
_libc.syscall.restype = ct.c_long


def _bpf(cmd, attr):
    if SYS_BPF is None:
        raise OSError(errno.ENOSYS, "no bpf(2) number known for this architecture")
    buf = ct.create_string_buffer(bytes(attr).ljust(ATTR_SIZE, b"\0"), ATTR_SIZE)
    fd = _libc.syscall(SYS_BPF, cmd, buf, ATTR_SIZE)
    if fd < 0:
        e = ct.get_errno()
        raise OSError(e, os.strerror(e))
    return fd


def load(insns, name, attach_type, btf_id, log=False, prog_type=BPF_PROG_TYPE_TRACING):
    """Load bcc-compiled instructions as a BPF_PROG_TYPE_TRACING program that attaches
    (attach_type) to kernel BTF type btf_id, or as another prog_type (a tracepoint's:
    attach_type and btf_id 0). Returns the program fd; raises NlbpfError with the
    verifier's last words if the kernel refuses it."""
    code = ct.create_string_buffer(bytes(insns), len(insns))
    lic = ct.create_string_buffer(b"GPL")
    logbuf = ct.create_string_buffer(LOG_SIZE) if log else None
    attr = bytearray(ATTR_SIZE)
    struct.pack_into("=IIQQIIQII", attr, 0, prog_type, len(insns) // 8,
                     ct.addressof(code), ct.addressof(lic), 1 if log else 0,
                     LOG_SIZE if log else 0, ct.addressof(logbuf) if log else 0, 0, 0)
    attr[48:64] = name.encode()[:15].ljust(16, b"\0")       # prog_name
    struct.pack_into("=I", attr, 68, attach_type)          # expected_attach_type
    struct.pack_into("=I", attr, 108, btf_id)              # attach_btf_id
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        if not log and e.errno not in (errno.EPERM, errno.ENOSYS):
            return load(insns, name, attach_type, btf_id, True, prog_type)   # for the reason
        why = e.strerror
        if logbuf is not None and logbuf.value:
            # the verifier's reason is the last line before its statistics
            lines = [ln for ln in logbuf.value.decode("utf-8", "replace").splitlines()
                     if ln.strip() and not ln.startswith(("processed ", "verification time"))]
            why += f" ({lines[-1]})" if lines else ""
            if os.environ.get("NLBPF_VERIFIER_LOG"):
                with open(os.environ["NLBPF_VERIFIER_LOG"], "w") as f:
                    f.write(logbuf.value.decode("utf-8", "replace"))
        if e.errno == errno.EPERM and prog_type == BPF_PROG_TYPE_TRACING:
            why = "the kernel refuses to load BTF-typed tracing programs (EPERM)"
        raise NlbpfError(f"cannot load {name}: {why}") from None


# bpf_rdonly_cast (6.2+) is a kfunc: a call bcc compiles as one to this helper id
# (bpf/base.bpf.h's rdonly_cast) is made a call to the kfunc before loading
KFUNC_MARKERS = {0x7ff0: "bpf_rdonly_cast"}
BPF_CALL, BPF_PSEUDO_KFUNC_CALL = 0x85, 2


def patch_kfuncs(insns, ids):
    """Turn calls of the marker helper ids into calls of the kfuncs they stand for
    (ids: kfunc name -> vmlinux BTF id). Returns the new instructions."""
    code = bytearray(insns)
    for i in range(0, len(code) - 7, 8):
        op, regs, _off, imm = struct.unpack_from("<BBhi", code, i)
        if op == BPF_CALL and (regs >> 4) == 0 and imm in KFUNC_MARKERS:
            name = KFUNC_MARKERS[imm]
            if name not in ids:
                raise NlbpfError(f"this kernel's BTF has no {name} (the socket layer needs it)")
            struct.pack_into("<BBhi", code, i, op, (regs & 0x0F) | (BPF_PSEUDO_KFUNC_CALL << 4),
                             0, ids[name])
    return bytes(code)


def attach_tracepoint(prog_fd):
    """Attach a tp_btf program to the tracepoint it was loaded for; returns the link fd."""
    try:
        return _bpf(BPF_RAW_TRACEPOINT_OPEN, struct.pack("=QI", 0, prog_fd))
    except OSError as e:
        raise NlbpfError(f"cannot attach a BTF tracepoint program: {e.strerror}") from None


def iter_link(prog_fd):
    """Link an iterator program to its target; returns the link fd."""
    try:
        return _bpf(BPF_LINK_CREATE, struct.pack("=IIII", prog_fd, 0, BPF_TRACE_ITER, 0)
                    + struct.pack("=QI", 0, 0))
    except OSError as e:
        raise NlbpfError(f"cannot link a task iterator: {e.strerror}") from None


def iter_run(link_fd):
    """Run the iterator over every task once (its program sees each in turn)."""
    fd = _bpf(BPF_ITER_CREATE, struct.pack("=II", link_fd, 0))
    try:
        while os.read(fd, 4096):
            pass
    finally:
        os.close(fd)


class Programs:
    """The fds of what was loaded here: closed together, which detaches them."""

    def __init__(self):
        self.fds = []

    def keep(self, fd):
        self.fds.append(fd)
        return fd

    def close(self):
        while self.fds:
            try:
                os.close(self.fds.pop())
            except OSError:
                pass
