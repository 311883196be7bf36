"""Compile bpf/nlbpf.bpf.c with bcc, attach it, and hand over records.

The C file is compiled as it is; everything variable (mode, filters, struct
offsets, snap length) goes in as -D defines.
"""
import ctypes as ct
import os
import time
from pathlib import Path

from ..errors import NlbpfError
from . import environment
from .btf import BTFError, probe_offsets
from .records import convert, ST_LOST, ST_TRUNC_WALK, ST_EMITTED, ST_PENDING_FULL

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"
SOURCE = BPF_DIR / "nlbpf.bpf.c"

MODES = ("trace", "errors", "slow", "top")
MIN_SNAPLEN, MAX_SNAPLEN = 16, 4096


class Capture:
    """One loaded copy of the probes.

    mode      trace: every message; errors: failed requests and interrupted dumps;
              slow: requests over slow_ns; top: per-process counters in the kernel
    """

    def __init__(self, mode, filters, snaplen=1024, slow_ns=None, buffer="auto",
                 buffer_pages=4096, span_min_ns=None):
        if mode not in MODES:
            raise ValueError(mode)
        if not MIN_SNAPLEN <= snaplen <= MAX_SNAPLEN:
            raise NlbpfError(f"--snaplen must be between {MIN_SNAPLEN} and {MAX_SNAPLEN}",
                             exit_code=2)
        self.mode = mode
        self.filters = filters
        self.snaplen = snaplen
        self.slow_ns = slow_ns
        self.buffer = buffer
        self.buffer_pages = buffer_pages
        self.span_min_ns = span_min_ns
        self.bpf = None
        self.hooks = []           # (hook, status) for doctor/debug
        self._pending = []
        self._perf_lost = 0
        self.uses_ringbuf = None

    # ------------------------------------------------------------------ set-up
    def cflags(self, offsets, ringbuf, have_extack, have_locks):
        flags = [f"-I{BPF_DIR}", f"-DMODE_{self.mode.upper()}", f"-DSNAPLEN={self.snaplen}",
                 f"-DSELF_PID={os.getpid()}", "-Wno-macro-redefined"]
        flags += [f"-D{name}={value}" for name, value in offsets.items()]
        if ringbuf:
            flags += ["-DUSE_RINGBUF", f"-DRINGBUF_PAGES={self.buffer_pages}"]
        if self.mode in ("errors", "slow"):
            flags.append("-DKEEP_REQUEST")
        if self.mode == "slow":
            flags.append(f"-DSLOW_NS={int(self.slow_ns)}ULL")
            span = self.span_min_ns if self.span_min_ns is not None else min(int(self.slow_ns), 1_000_000)
            flags.append(f"-DSPAN_MIN_NS={span}ULL")
        if not have_extack:
            flags.append("-DNO_EXTACK")
        if not have_locks:
            flags.append("-DNO_LOCKS")
        flags += self.filters.cflags()
        return flags

    def start(self):
        environment.require_root()
        bcc = environment.import_bcc()
        environment.kernel_headers()
        environment.require_tracefs()
        for call in ("sendmsg", "recvmsg", "sendto", "recvfrom", "sendmmsg", "recvmmsg"):
            if not environment.tracepoint_exists("syscalls", f"sys_enter_{call}"):
                raise NlbpfError(f"this kernel has no syscalls:sys_enter_{call} tracepoint "
                                 "(CONFIG_FTRACE_SYSCALLS); nlbpf cannot capture here")
        try:
            offsets = probe_offsets()
        except BTFError as e:
            raise NlbpfError(f"cannot read struct offsets from the kernel's BTF: {e}") from None
        have_extack = environment.tracepoint_exists("netlink", "netlink_extack")
        have_locks = (environment.tracepoint_exists("lock", "contention_begin")
                      and environment.tracepoint_exists("lock", "contention_end"))
        ringbuf = self._want_ringbuf(bcc)
        self.uses_ringbuf = ringbuf
        flags = self.cflags(offsets, ringbuf, have_extack, have_locks)
        try:
            self.bpf = bcc.BPF(src_file=str(SOURCE).encode(), cflags=flags)
            walk = self.bpf.load_func("walk", bcc.BPF.TRACEPOINT)
            self.bpf["progs"][ct.c_int(0)] = ct.c_int(walk.fd)
        except Exception as e:  # bcc raises bare Exception with the reason inside
            raise NlbpfError(f"failed to load the probes: {str(e).splitlines()[0]}") from None
        self.hooks = [("syscall tracepoints", "attached"),
                      ("netlink:netlink_extack", "attached" if have_extack else "missing"),
                      ("lock:contention_begin/end", "attached" if have_locks else "missing")]
        self._set_cgroup_filter()
        if self.mode != "top":
            table = self.bpf["events"]
            if ringbuf:
                table.open_ring_buffer(self._on_event)
            else:
                table.open_perf_buffer(self._on_event, page_cnt=256, lost_cb=self._on_lost)
        return self

    def _set_cgroup_filter(self):
        """--cgroup/--container: the probes test the task against this cgroup array slot."""
        directory = getattr(self.filters, "cgroup", None)
        if directory is None:
            return
        try:
            self.bpf["cgroup_filter"][0] = directory
        except Exception as e:  # KeyError (no map) or OSError (cgroup gone)
            self.close()
            raise NlbpfError(f"cannot set the cgroup filter to {directory}: {e}") from None

    def _want_ringbuf(self, bcc):
        if self.buffer == "perf":
            return False
        has = bcc.BPF.support_ringbuf() if hasattr(bcc.BPF, "support_ringbuf") else True
        if self.buffer == "ring" and not has:
            raise NlbpfError("this kernel has no BPF ring buffer (needs 5.8+); use --buffer perf")
        return has

    # --------------------------------------------------------------- events
    def _on_event(self, ctx, data, size):
        ev = self.bpf["events"].event(data)
        rec = convert(ev)
        if rec is not None:
            self._pending.append(rec)

    def _on_lost(self, count):
        self._perf_lost += count

    def poll(self, timeout_ms=100):
        """Records handed over since the last poll (waits up to timeout_ms for some)."""
        if self.mode == "top":
            time.sleep(timeout_ms / 1000)
            return []
        if self.uses_ringbuf:
            self.bpf.ring_buffer_poll(timeout_ms)
        else:
            self.bpf.perf_buffer_poll(timeout_ms)
        out, self._pending = self._pending, []
        return out

    def drain(self):
        """Whatever is still buffered, without waiting."""
        if self.mode == "top" or self.bpf is None:
            return []
        if self.uses_ringbuf:
            self.bpf.ring_buffer_consume()
        else:
            self.bpf.perf_buffer_poll(0)
        out, self._pending = self._pending, []
        return out

    def stats(self):
        """Kernel counters: lost (no room in the buffer), emitted, walk cut short, pending full."""
        table = self.bpf["stats"]
        total = {}
        for name, idx in (("lost", ST_LOST), ("emitted", ST_EMITTED),
                          ("walk_truncated", ST_TRUNC_WALK), ("pending_full", ST_PENDING_FULL)):
            total[name] = sum(table[ct.c_int(idx)])
        total["lost"] += self._perf_lost
        return total

    def close(self):
        if self.bpf is not None:
            self.bpf.cleanup()
            self.bpf = None


TOP_COUNTERS = ("requests", "errors", "dumps", "dump_intr", "msgs_in", "msgs_out", "bytes_in",
                "bytes_out", "lat_count", "lat_sum_ns", "lock_wait_ns")


def read_top(capture):
    """Cumulative per-process counters from the kernel: {pid: dict}, {(pid, proto, type): n}."""
    rows = {}
    for key, val in capture.bpf["top"].items():
        row = {name: getattr(val, name) for name in TOP_COUNTERS}
        row["comm"] = bytes(val.comm).split(b"\0", 1)[0].decode("utf-8", "replace")
        row["lat_max_ns"] = val.lat_max_ns
        row["hist"] = list(val.lat_hist)
        rows[key.value] = row
    types = {(k.pid, k.proto, k.type): v.value for k, v in capture.bpf["top_types"].items()}
    return rows, types


def forget_pids(capture, pids):
    """Drop the kernel's counters of processes that are gone."""
    top = capture.bpf["top"]
    for pid in pids:
        try:
            del top[top.Key(pid)]
        except KeyError:
            pass
    gone = set(pids)
    types = capture.bpf["top_types"]
    for k in [k for k in types.keys() if k.pid in gone]:
        try:
            del types[k]
        except KeyError:
            pass
