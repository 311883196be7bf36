"""Compile the probes of one hook layer with bcc, attach them, and hand over records.

The layer's C text (bpf/, joined by source.py) is compiled as it is; everything
variable (mode, filters, struct offsets, snap length) goes in as -D defines.
"""
import ctypes as ct
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import NlbpfError
from . import environment
from . import bootcache, btfprog, layers, ringbuf, source
from .settings import CaptureSettings, MAX_SNAPLEN, MIN_SNAPLEN, default_snaplen
from .btf import (BTF, BTFError, KERNEL_OFFSETS, PROBE_OFFSETS, SOCK_OFFSETS, WORKER_OFFSETS,
                  probe_offsets)
from .abi import LAT_BUCKETS, TOP_COUNTERS
from .records import (CtypesReader, EventReader, records_of, ST_LOST, ST_TRUNC_WALK, ST_EMITTED,
                      ST_PENDING_FULL, ST_UNSEEN, ST_FOLLOW_FULL)


MODES = ("trace", "errors", "slow", "top")
# what top can also count in the kernel (serve's metrics): failed requests per process,
# type and errno; latency and lock wait histograms per protocol and type
EXTRA_COUNTS = {"errno": "-DCOUNT_ERRNO", "type_hist": "-DTYPE_HIST"}
POLL_BATCH = 4096       # records per poll() from the ring's backlog
# ... and bytes: an EV_CHUNK of 16 KB is up to 512 records once split (4,096 of them
# made ~2M records at once, 1.5 GB, in trace on a dump flood)
POLL_BYTES = 1 << 20
RAW_RING, RAW_EVENT = 2, 3  # what spool_to()'s sink gets: spans of ring records, or one event


@dataclass
class IterPass:
    """An iterator of the socket layer, run every period_ns (Capture.run_passes)."""
    link: int
    target: str             # bpf_iter_task (slow) or bpf_iter_task_file (errors)
    period_ns: int
    last: int = 0           # when it last ran (0: not yet)
    next: int = 0


class Capture:
    """One loaded copy of the probes.

    mode      trace: every message; errors: failed requests and interrupted dumps;
              slow: requests over slow_ns; top: per-process counters in the kernel
    """

    def __init__(self, mode, filters, snaplen=None, slow_ns=None, settings=None,
                 span_min_ns=None, self_pid=None, counts=()):
        if mode not in MODES:
            raise ValueError(mode)
        if set(counts) - set(EXTRA_COUNTS) or (counts and mode != "top"):
            raise ValueError(counts)
        self.counts = tuple(counts)       # top's extra maps (EXTRA_COUNTS), for serve
        snaplen = default_snaplen(mode) if snaplen is None else snaplen
        if not MIN_SNAPLEN <= snaplen <= MAX_SNAPLEN:
            raise NlbpfError(f"--snaplen must be between {MIN_SNAPLEN} and {MAX_SNAPLEN}",
                             exit_code=2)
        self.mode = mode
        self.filters = filters
        self.snaplen = snaplen
        self.slow_ns = slow_ns
        self.settings = settings = settings or CaptureSettings()
        self.buffer = settings.buffer
        # ring buffer: pages in all; perf buffer: pages per CPU (--buffer-pages, for tests)
        self.pages_given = settings.buffer_pages
        self.buffer_pages = self.pages_given or 4096
        self.span_min_ns = span_min_ns
        self.hooks_choice = settings.hooks                # auto | kernel | sock | syscall
        self.kernel_probe = settings.kernel_probe         # auto | fentry | kprobe
        self.layer = None                 # what loaded: "syscall", "sock" or "kernel (fentry|kprobe)"
        self.layer_reasons = []           # why the preferred layers did not load
        self.notes = []                   # what the layer that loaded will not show, said once
        self.entries = layers.SYSCALL_ENTRIES     # syscall layer: the calls it hooks
        self.rw_hooked = None             # ... and whether read/write are among them
        self.bpf = None
        self.hooks = []           # (hook, status) for doctor/debug
        self._pending = []
        self._perf_lost = 0
        self._reader = None
        self.uses_ringbuf = None
        self._ring = None
        self.call_state = None            # where a thread's call in flight is kept
        self.fd_walk = None               # syscall layer: how its entry probes find the socket
        self._raw_sink = None             # spool_to()
        self.self_pid = self_pid or os.getpid()     # whose netlink is not news
        self._btf_progs = None            # socket layer: what btfprog loaded (closed with the rest)
        self._passes = []                 # ... and the iterators it runs on a schedule
        self._btf_parsed = None

    # ------------------------------------------------------------------ set-up
    def cflags(self, offsets, ringbuf, have_extack, have_locks):
        flags = [f"-I{source.BPF_DIR}", f"-DMODE_{self.mode.upper()}", f"-DSNAPLEN={self.snaplen}",
                 f"-DSELF_PID={self.self_pid}", "-Wno-macro-redefined"]
        flags += [f"-D{name}={value}" for name, value in offsets.items()]
        if "OFF_WORKER_CURRENT_FUNC" in offsets:
            flags.append("-DHAVE_WORKER_FUNC")
        if ringbuf:
            flags += ["-DUSE_RINGBUF", f"-DRINGBUF_PAGES={self.buffer_pages}"]
        if self.mode in ("errors", "slow"):
            flags.append("-DKEEP_REQUEST")
        if self.mode == "slow":
            flags.append(f"-DSLOW_NS={int(self.slow_ns)}ULL")
            span = self.span_min_ns if self.span_min_ns is not None else min(int(self.slow_ns), 1_000_000)
            flags.append(f"-DSPAN_MIN_NS={span}ULL")
        flags += [EXTRA_COUNTS[c] for c in self.counts]
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
        # BTF is parsed only when the offsets are not known from an earlier start since
        # boot, or when the kernel layer needs it (bootcache.py)
        btf = None
        offsets_entry = bootcache.name_for("offsets", PROBE_OFFSETS)
        offsets = bootcache.get(offsets_entry)
        if not (isinstance(offsets, dict) and set(offsets) == set(PROBE_OFFSETS)
                and all(isinstance(v, int) for v in offsets.values())):
            btf = self._btf()
            try:
                offsets = probe_offsets(btf)
            except BTFError as e:
                raise NlbpfError(f"cannot read struct offsets from the kernel's BTF: {e}") from None
            bootcache.put(offsets_entry, offsets)
        self.uses_ringbuf = self._want_ringbuf(bcc)
        reasons = []
        self._btf_parsed = btf          # parsed once, by whichever layer needs it first
        if self.mode == "slow":
            offsets = {**offsets, **self._worker_offsets()}
        for layer in layers.layer_order(self.mode, self.hooks_choice, self.slow_ns):
            if layer == "kernel":
                why = self._try_kernel(bcc, offsets, reasons)
            elif layer == "sock":
                why = self._try_sock(bcc, offsets)
                if why:
                    reasons.append(f"sock: {why}")
            else:
                self._load_syscall(bcc, offsets)
                why = None
            if why is None:
                break
        if self.bpf is None:
            what = {"kernel": "the kernel-function layer", "sock": "the socket-tracepoint layer"}
            raise NlbpfError(f"{what.get(self.hooks_choice, 'no hook layer')} cannot load here ("
                             + "; ".join(reasons) + "); use --hooks syscall")
        self.layer_reasons = reasons
        self._set_cgroup_filter()
        self._set_follow()
        self._set_ignores()
        if self.mode != "top":
            table = self.bpf["events"]
            if self.uses_ringbuf:
                self._open_ring(table)
            else:
                table.open_perf_buffer(self._on_event, page_cnt=self.pages_given or 256,
                                      lost_cb=self._on_lost)
        return self

    def _try_kernel(self, bcc, offsets, reasons):
        """Load the kernel-function layer with the first method that works; None if one
        did, else why not (each method's reason is added to reasons)."""
        why = "no probe method"
        for method in layers.kernel_methods(self.kernel_probe):
            # a refusal holds until reboot: the fentry test compiles and loads a program
            refusal = f"kernel-layer-{method}"
            why = None if self.settings.ask_again else bootcache.get(refusal)
            if why is None:
                why = layers.kernel_unavailable(bcc, self._parsed_btf(), method)
                if why is not None:
                    bootcache.put(refusal, why)
            if why is None:
                try:
                    self._load_kernel(bcc, self._parsed_btf(), offsets, method)
                    return None
                except NlbpfError as e:
                    why = str(e)
            reasons.append(f"{method}: {why}")
        return why

    def _worker_offsets(self):
        """What slow reads of a kworker that holds a lock (btf.WORKER_OFFSETS), or {} where
        the kernel lays it out otherwise; kept for the boot like the other offsets."""
        entry = bootcache.name_for("worker-offsets", WORKER_OFFSETS)
        found = bootcache.get(entry)
        if not isinstance(found, dict) or not all(isinstance(v, int) for v in found.values()):
            try:
                found = probe_offsets(self._parsed_btf(), WORKER_OFFSETS)
            except BTFError:
                found = {}
            bootcache.put(entry, found)
        return found

    def _parsed_btf(self):
        if self._btf_parsed is None:
            self._btf_parsed = self._btf()
        return self._btf_parsed

    def _try_sock(self, bcc, offsets):
        """Load the socket-tracepoint layer; None if it loaded, else why not. A refusal
        by the kernel holds until reboot (bootcache), as the kernel layer's does."""
        why = layers.sock_unavailable(self.mode, self.settings.call_state)
        if why is not None:
            return why
        # what the kernel refused, it refuses until reboot, for these probes (the
        # command's programs, as this source has them)
        refusal = bootcache.name_for("sock-layer", [self.mode, *self.counts,
                                                    source.layer_digest("sock")])
        why = None if self.settings.ask_again else bootcache.get(refusal)
        if why is not None:
            return why
        try:
            facts = self._sock_facts()
            self._load_sock(bcc, {**offsets, **facts["offsets"]}, facts["ids"])
            return None
        except NlbpfError as e:
            self.close()
            if "cannot load" in str(e) or "refuses" in str(e):
                bootcache.put(refusal, str(e))
            return str(e)

    def _sock_facts(self):
        """The socket layer's struct offsets and the BTF ids its programs attach by
        (kept for the boot, like the other offsets)."""
        entry = bootcache.name_for("sock", [SOCK_OFFSETS, layers.SOCK_ATTACH, layers.SOCK_TYPES])
        facts = bootcache.get(entry)
        if isinstance(facts, dict) and set(facts.get("offsets", ())) == set(SOCK_OFFSETS) | set(
                layers.SOCK_TYPES):
            return facts
        btf = self._parsed_btf()
        try:
            offs = probe_offsets(btf, SOCK_OFFSETS)
            offs.update({define: btf.struct_id(name) for define, name in layers.SOCK_TYPES.items()})
        except BTFError as e:
            raise NlbpfError(f"BTF lacks what the socket layer reads: {e}") from None
        ids = {name: btf.attach_ids[name] for name in layers.SOCK_ATTACH if name in btf.attach_ids}
        missing = [n for n in layers.SOCK_ATTACH if n not in ids]
        if missing:
            raise NlbpfError(f"BTF has no {', '.join(missing)}")
        facts = {"offsets": offs, "ids": ids}
        bootcache.put(entry, facts)
        return facts

    def _load_sock(self, bcc, offsets, ids):
        have_extack = environment.tracepoint_exists("netlink", "netlink_extack")
        # errors needs no lock waits; top and slow report them
        have_locks = self.mode != "errors" and layers.have_lock_tracepoints()
        flags = self.cflags(offsets, self.uses_ringbuf, have_extack, have_locks)
        flags = [f for f in flags if f != "-DKEEP_REQUEST"] + ["-DSOCK_LAYER", "-DUSE_TASK_STORAGE"]
        self.bpf = self._compile(bcc, "sock", flags)   # extack and lock tracepoints attach here
        self._btf_progs = btfprog.Programs()
        self.hooks = []
        for func, target in layers.SOCK_PROGRAMS[self.mode]:
            insns = btfprog.patch_kfuncs(self.bpf.dump_func(func), ids)
            if target.startswith("bpf_iter_"):
                fd = self._btf_progs.keep(btfprog.load(insns, func, btfprog.BPF_TRACE_ITER, ids[target]))
                link = self._btf_progs.keep(btfprog.iter_link(fd))
                self._passes.append(IterPass(link, target, self._pass_period(target)))
                self.hooks.append((f"{target} iterator",
                                   f"every {self._passes[-1].period_ns // 1_000_000} ms"))
            else:
                fd = self._btf_progs.keep(btfprog.load(insns, func, btfprog.BPF_TRACE_RAW_TP,
                                                       ids["btf_trace_" + target]))
                self._btf_progs.keep(btfprog.attach_tracepoint(fd))
                self.hooks.append((f"sock:{target}", "attached (tp_btf)"))
        self.layer = "sock"
        self.call_state = "task storage"
        self.hooks += [("netlink:netlink_extack", "attached" if have_extack and self.mode != "top"
                        else "not used"),
                       ("lock:contention_begin/end", "attached" if have_locks else "not used")]

    def _pass_period(self, target):
        if target == "bpf_iter_task":
            return layers.poll_period_ns(self.slow_ns)     # slow: every thread
        return layers.DROPS_PERIOD_NS                      # errors: every socket's drops

    @property
    def poll_period_ms(self):
        """How often slow looks at every thread (socket layer)."""
        return next((p.period_ns // 1_000_000 for p in self._passes
                     if p.target == "bpf_iter_task"), 0)

    def run_passes(self):
        """Run the socket layer's iterators that are due. Returns ms until the next one
        (None when there is none)."""
        if not self._passes:
            return None
        now = time.monotonic_ns()
        for p in self._passes:
            if now < p.next:
                continue
            if p.target == "bpf_iter_task":
                # what slow_poll knows of the previous look: a call it sees for the
                # first time began after it. A call already running at the first look
                # counts from that look (how long it ran before is not known), so it
                # is never reported for time nobody saw
                self.bpf["poll_clock"][ct.c_int(0)] = ct.c_ulonglong(p.last or now)
            else:
                # the drops counted before the first look are history
                self.bpf["drops_first"][ct.c_int(0)] = ct.c_uint(0 if p.last else 1)
            btfprog.iter_run(p.link)
            p.last = now
            p.next = now + p.period_ns
        return max(1, (min(p.next for p in self._passes) - time.monotonic_ns()) // 1_000_000)

    @staticmethod
    def _btf():
        try:
            return BTF.load()
        except BTFError as e:
            raise NlbpfError(f"cannot read struct offsets from the kernel's BTF: {e}") from None

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

    def _set_follow(self):
        """trace -- CMD: the command's process (not yet running) is the first followed."""
        pid = getattr(self.filters, "follow", None)
        if pid is None:
            return
        table = self.bpf["follow"]
        table[table.Key(pid)] = table.Leaf(1)

    def _set_ignores(self):
        """errors --ignore: each rule's keys in the ignores map, counting from 0."""
        keys = self.filters.ignore_keys() if getattr(self.filters, "ignore", ()) else {}
        if not keys:
            return
        table = self.bpf["ignores"]
        for rule_keys in keys.values():
            for proto, type_, err in rule_keys:
                table[table.Key(err=err, type=type_, proto=proto)] = table.Leaf(0)

    def ignored(self):
        """{--ignore rule: failures the probes dropped for it}."""
        keys = self.filters.ignore_keys() if getattr(self.filters, "ignore", ()) else {}
        if not keys or self.bpf is None:
            return {}
        counts = {(k.proto, k.type, k.err): v.value for k, v in self.bpf["ignores"].items()}
        return {rule.text: sum(counts.get(key, 0) for key in rule_keys)
                for rule, rule_keys in keys.items()}

    def _compile(self, bcc, layer, flags):
        try:
            return bcc.BPF(text=source.layer_text(layer).encode(), cflags=flags)
        except Exception as e:  # bcc raises bare Exception with the reason inside
            raise NlbpfError(f"failed to load the probes: {str(e).splitlines()[0]}") from None

    def _load_syscall(self, bcc, offsets):
        # netlink sends and receives by paths without a syscall of this layer (io_uring,
        # sendfile) are counted where the kernel has these (6.7+)
        have_unseen = layers.have_sock_length_tracepoints()
        rw = self.settings.rw
        self.rw_hooked = rw == "on" or (rw == "auto" and not have_unseen)
        self.entries = layers.SOCKET_CALLS + (layers.RW_CALLS if self.rw_hooked else ())
        for call in self.entries:
            if not environment.tracepoint_exists("syscalls", f"sys_enter_{call}"):
                raise NlbpfError(f"this kernel has no syscalls:sys_enter_{call} tracepoint "
                                 "(CONFIG_FTRACE_SYSCALLS); nlbpf cannot capture here")
        if not environment.tracepoint_exists("skb", "skb_copy_datagram_iovec"):
            raise NlbpfError("this kernel has no skb:skb_copy_datagram_iovec tracepoint, which "
                             "tells the kernel's replies from other processes' messages")
        have_extack = environment.tracepoint_exists("netlink", "netlink_extack")
        have_locks = layers.have_lock_tracepoints()
        walk = self._walk_facts()
        kfunc, fd_walk = self._fd_walk(walk)
        flags = self.cflags({**offsets, **walk["types"]}, self.uses_ringbuf, have_extack,
                            have_locks) + self._call_state("syscall")
        if have_unseen:
            flags.append("-DHAVE_SOCK_LENGTH")
        if self.rw_hooked:
            flags.append("-DHOOK_RW")
        elif have_unseen:
            self.notes.append("netlink calls made with read(), write() and their vector forms "
                              "are counted as not walked, not shown; --rw on shows them, at a "
                              "cost to every process's file I/O")
        else:
            self.notes.append("netlink calls made with read(), write() and their vector forms "
                              "are neither shown nor counted (--rw off; this kernel has no "
                              "sock:sock_send_length to count them)")
        # slot 1: trace's bulk copy of dump parts; the other modes' header-only pass;
        # slot 2: a message gathered from the iovecs it is spread over; slot 3: the exit
        # of every hooked syscall (its tracepoints' programs tail-call it)
        second = "walk_chunk" if self.mode == "trace" else "walk_hdrs"
        while True:     # once, or twice if the kernel refuses the BTF build
            self.bpf = self._compile(bcc, "syscall", flags + (["-DFD_WALK_BTF"] if kfunc else []))
            try:
                for slot, prog in enumerate(self._load_together(bcc, ("walk", second,
                                                                     "walk_split",
                                                                     "sc_exit"))):
                    self.bpf["progs"][ct.c_int(slot)] = ct.c_int(prog.fd)
                self._attach_entries(bcc, kfunc)
                break
            except NlbpfError as e:
                self.close()
                if not kfunc:
                    raise
                # the kernel refused the BTF build: the helper build, now and until reboot
                fd_walk = f"helper reads (the BTF-load build was refused: {e})"
                bootcache.put(self._fd_walk_refusal(), fd_walk)
                kfunc = 0
            except Exception as e:
                self.close()
                raise NlbpfError(f"failed to load the probes: {str(e).splitlines()[0]}") from None
        self.layer = "syscall"
        self.fd_walk = fd_walk
        self.hooks = [("syscall tracepoints", f"attached (fd -> socket: {fd_walk})"),
                      ("skb:skb_copy_datagram_iovec", "attached (who sent each reply)"),
                      ("sock:sock_send_length/sock_recv_length",
                       "attached (netlink calls outside these syscalls counted)" if have_unseen
                       else "missing (io_uring, sendfile: not counted)"),
                      ("netlink:netlink_extack", "attached" if have_extack else "missing"),
                      ("lock:contention_begin/end", "attached" if have_locks else "missing")]

    def _fd_walk(self, walk):
        """How the entry probes will walk fd -> sock: (bpf_rdonly_cast's BTF id, or 0 for
        the helper-read build; what to say of it)."""
        if self.settings.fd_walk != "auto":
            return 0, "helper reads (asked for)"
        if not walk["kfunc"]:
            return 0, "helper reads (no bpf_rdonly_cast: Linux 6.2+)"
        refused = bootcache.get(self._fd_walk_refusal())
        if refused is not None:
            return 0, refused
        return walk["kfunc"], "BTF loads"

    def _fd_walk_refusal(self):
        """The cache entry for a refused BTF build: this command's, from this source."""
        return bootcache.name_for("fd-walk", [self.mode, source.layer_digest("syscall")])

    def _walk_facts(self):
        """What the entry probes' fd -> sock walk through BTF pointers needs: the BTF
        ids it casts to and bpf_rdonly_cast's (0 where the kernel lacks the kfunc).
        Kept for the boot, like the offsets."""
        entry = bootcache.name_for("walk", [layers.WALK_TYPES, "bpf_rdonly_cast"])
        facts = bootcache.get(entry)
        if isinstance(facts, dict) and isinstance(facts.get("kfunc"), int) and \
                set(facts.get("types", ())) in (set(), set(layers.WALK_TYPES)):
            return facts
        btf = self._parsed_btf()
        try:
            types = {define: btf.struct_id(name) for define, name in layers.WALK_TYPES.items()}
            kfunc = btf.attach_ids.get("bpf_rdonly_cast", 0)
        except BTFError:
            types, kfunc = {}, 0
        facts = {"types": types, "kfunc": kfunc if types else 0}
        bootcache.put(entry, facts)
        return facts

    def _attach_entries(self, bcc, kfunc):
        """Attach the entry probes. With kfunc (bpf_rdonly_cast's BTF id: the build
        compiled with FD_WALK_BTF) they are patched and loaded here, since bcc cannot
        emit kfunc calls; NlbpfError if the kernel refuses them. Else bcc loads them."""
        if kfunc:
            fds = {}
            try:
                for call in self.entries:
                    insns = btfprog.patch_kfuncs(self.bpf.dump_func(f"sc_enter_{call}"),
                                                 {"bpf_rdonly_cast": kfunc})
                    # named apart from the helper build (bpftool shows which is attached)
                    fds[call] = btfprog.load(insns, f"nl_btf_{call}", 0, 0,
                                             prog_type=btfprog.BPF_PROG_TYPE_TRACEPOINT)
            except NlbpfError:
                for fd in fds.values():
                    os.close(fd)
                raise
            # bcc attaches (and at cleanup detaches and closes) what its table holds
            for call, fd in fds.items():
                name = f"sc_enter_{call}".encode()
                self.bpf.funcs[name] = bcc.BPF.Function(self.bpf, name, fd)
        for call in self.entries:
            self.bpf.attach_tracepoint(tp=f"syscalls:sys_enter_{call}".encode(),
                                       fn_name=f"sc_enter_{call}".encode())

    def _load_together(self, bcc, names):
        """Load the tail-called programs, each in its own thread: the kernel's
        verifier takes most of a second over `walk`, and ctypes lets go of the
        GIL while bpf() runs, so the second program's check overlaps it."""
        out, errors = {}, []

        def load(name):
            try:
                out[name] = self.bpf.load_func(name, bcc.BPF.TRACEPOINT)
            except Exception as e:  # bcc raises bare Exception with the reason inside
                errors.append(e)

        threads = [threading.Thread(target=load, args=(name,)) for name in names[1:]]
        for t in threads:
            t.start()
        load(names[0])
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return [out[name] for name in names]

    def _load_kernel(self, bcc, btf, offsets, method):
        try:
            koffsets = probe_offsets(btf, KERNEL_OFFSETS)
        except BTFError as e:
            raise NlbpfError(f"BTF lacks what the kernel layer reads: {e}") from None
        hooks = layers.kernel_hooks(btf)
        missing = [h.function for h in hooks if h.essential and not h.present]
        if missing:
            raise NlbpfError(f"kernel functions not traceable: {', '.join(missing)}")
        present = [h for h in hooks if h.present]
        have_locks = layers.have_lock_tracepoints()
        have_ack = any(h.define == "HOOK_ACK" for h in present)
        flags = self.cflags({**offsets, **koffsets}, self.uses_ringbuf,
                            have_extack=not have_ack and environment.tracepoint_exists("netlink", "netlink_extack"),
                            have_locks=have_locks)
        flags += ["-DKERNEL_LAYER"] + [f"-D{h.define}" for h in present]
        if method == "fentry":
            flags.append("-DUSE_FENTRY")
        flags += self._call_state(method)
        self.bpf = self._compile(bcc, "kernel", flags)   # fentry programs attach here
        if method == "kprobe":
            try:
                for h in present:
                    self.bpf.attach_kprobe(event=h.function, fn_name=h.kprobe)
                    if h.kretprobe:
                        self.bpf.attach_kretprobe(event=h.function, fn_name=h.kretprobe)
            except Exception as e:
                self.close()
                raise NlbpfError(f"kprobe on {h.function} did not attach: "
                                 f"{str(e).splitlines()[0]}") from None
        self.layer = f"kernel ({method})"
        self.hooks = [(h.function, f"attached ({method})" if h.present else "missing") for h in hooks]
        self.hooks.append(("lock:contention_begin/end", "attached" if have_locks else "missing"))

    def _call_state(self, layer):
        """-D for where a thread's call in flight is kept: task storage, else a hash by tid."""
        if self.settings.call_state == "auto" and layers.have_task_storage(layer):
            self.call_state = "task storage"
            return ["-DUSE_TASK_STORAGE"]
        self.call_state = "hash map by thread id"
        return []

    def _want_ringbuf(self, bcc):
        if self.buffer == "perf":
            return False
        has = bcc.BPF.support_ringbuf() if hasattr(bcc.BPF, "support_ringbuf") else True
        if self.buffer == "ring" and not has:
            raise NlbpfError("this kernel has no BPF ring buffer (needs 5.8+); use --buffer perf")
        return has

    def _open_ring(self, table):
        # read the ring's pages directly where that is safe (ringbuf.py), else bcc's callback
        if self.settings.ring_reader == "auto" and ringbuf.supported() is None:
            try:
                self._ring = ringbuf.RingReader.from_map(table.map_fd, table.max_entries)
            except OSError as e:    # libbpf (bcc's reader) maps the same pages the same way
                raise NlbpfError(f"cannot map the ring buffer: {e}; try --buffer perf") from None
        else:
            table.open_ring_buffer(self._on_event)

    # --------------------------------------------------------------- events
    def _reader_for(self):
        # bcc's class for the C struct (table.event() casts a pointer to it), found
        # once; EventReader reads it with one unpack, else a ctypes copy
        cls = type(self.bpf["events"].event(ct.addressof(ct.create_string_buffer(8))))
        self._reader = EventReader.for_class(cls) or CtypesReader(cls)
        return self._reader

    def spool_to(self, sink):
        """trace --spool's capture: from now on poll() and drain() hand the raw events
        to sink(kind, bytes) (RAW_RING or RAW_EVENT) and make no records of them; the
        decoding process does that with reader_layout()."""
        self._raw_sink = sink

    def reader_layout(self):
        """The event layout for EventReader.from_layout(), or None if the struct
        cannot be read with one unpack here."""
        reader = self._reader or self._reader_for()
        return reader.layout() if isinstance(reader, EventReader) else None

    def _on_event(self, ctx, data, size):
        # bcc's callback (perf buffer, or a ring this process does not map): copied
        # out, because the record's memory is the kernel's again once this returns
        if self._raw_sink is not None:
            self._raw_sink(RAW_EVENT, ct.string_at(data, size))
            return
        self._take(ct.string_at(data, size), 0, size)

    def _take(self, buf, off, size):
        return records_of(self._reader or self._reader_for(), buf, off, size, self.snaplen,
                   self._pending)

    def _spool_ring(self):
        for span in self._ring.take():
            self._raw_sink(RAW_RING, span)

    def _on_lost(self, count):
        self._perf_lost += count

    def poll(self, timeout_ms=100):
        """Records handed over since the last poll (waits up to timeout_ms for some)."""
        if self.mode == "top":
            time.sleep(timeout_ms / 1000)
            return []
        due = self.run_passes()
        if due is not None:
            timeout_ms = min(timeout_ms, due)
        ring = self._ring
        if ring is not None:
            # the probes wake this poll only every WAKEUP_EVERY events (bpf/maps.bpf.h):
            # what came since is taken when it times out
            if not ring.fill() and not ring.backlog:
                ring.wait(timeout_ms)
                ring.fill()
            if self._raw_sink is not None:
                self._spool_ring()
                return []
            # a batch at a time, so the ring is emptied again soon while a burst is worked on
            ring.each(self._take, POLL_BATCH, POLL_BYTES)
        elif self.uses_ringbuf:
            self.bpf.ring_buffer_poll(timeout_ms)
            self.bpf.ring_buffer_consume()
        else:
            self.bpf.perf_buffer_poll(timeout_ms)
        out, self._pending = self._pending, []
        return out

    def drain(self):
        """Whatever is still buffered, without waiting: records, a batch at a time (a
        full backlog is ~400k records; made into objects at once, it took 1.7 GB)."""
        if self.mode == "top" or self.bpf is None:
            return
        if self._ring is not None:
            # the backlog and what is in the ring now, not what the probes write
            # meanwhile. A backlog near its cap takes only part of the ring at a time:
            # the rest comes in as the backlog is handed on (left in the ring, it was
            # neither handed on nor counted lost)
            ring = self._ring
            upto = ring.produced()
            while True:
                ring.fill(upto)
                if self._raw_sink is not None:
                    if not ring.backlog:
                        return
                    self._spool_ring()
                    continue
                if not ring.each(self._take, POLL_BATCH, POLL_BYTES):
                    break
                out, self._pending = self._pending, []
                yield from out
        elif self.uses_ringbuf:
            self.bpf.ring_buffer_consume()
        else:
            self.bpf.perf_buffer_poll(0)
        out, self._pending = self._pending, []
        yield from out

    def backlog(self):
        """(bytes, limit) of records read from the ring and not yet handed on; (0, 0)
        where bcc's callback reads it."""
        ring = self._ring
        return (ring.backlog, ring.backlog_cap) if ring is not None else (0, 0)

    def stats(self):
        """Kernel counters: lost (no room in the buffer), emitted, walk cut short, pending full."""
        table = self.bpf["stats"]
        total = {}
        for name, idx in (("lost", ST_LOST), ("emitted", ST_EMITTED),
                          ("walk_truncated", ST_TRUNC_WALK), ("pending_full", ST_PENDING_FULL),
                          ("unseen", ST_UNSEEN), ("follow_full", ST_FOLLOW_FULL)):
            total[name] = sum(table[ct.c_int(idx)])
        by_rule = self.ignored()
        if by_rule:
            total["ignored"] = sum(by_rule.values())
            total["ignored_by"] = by_rule
        # ST_LOST counts every event the probes could not write, perf buffer or ring
        # buffer; the perf buffer's own PERF_RECORD_LOST counts (_perf_lost, from
        # lost_cb) are the same events again, reported late and only in part
        return total

    def detach(self):
        """Stop the probes, keeping their maps: what they handed over can still be read,
        and their counters are final (stats())."""
        if self._btf_progs is not None:
            self._btf_progs.close()
            self._btf_progs = None
            self._passes = []
        b = self.bpf
        if b is None:
            return
        # each detach waits for the kernel's RCU grace period (~65 ms for a tracepoint
        # here, seconds under emulation, and there are ~30) or a trampoline's update:
        # side by side, the waits overlap (ctypes and os.close let go of the GIL)
        todo = ([(b.detach_tracepoint, k) for k in b.tracepoint_fds]
                + [(b.detach_raw_tracepoint, k) for k in b.raw_tracepoint_fds]
                + [(b.detach_kprobe_event, k) for k in b.kprobe_fds]
                + [(b.detach_kfunc, k) for k in b.kfunc_entry_fds]
                + [(b.detach_kretfunc, k) for k in b.kfunc_exit_fds])
        if todo:
            with ThreadPoolExecutor(min(32, len(todo))) as pool:
                list(pool.map(lambda job: job[0](job[1]), todo))
        # a program that was running when its hook went finishes within microseconds
        time.sleep(0.01)

    def final_stats(self):
        """stats() once the probes are detached."""
        return self.stats()

    def close(self):
        # detached side by side first (detach()): bcc's cleanup would wait for each
        # hook's grace period in turn (~1.5 s for the syscall layer's)
        self.detach()
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self.bpf is not None:
            self.bpf.cleanup()
            self.bpf = None




# what a socket-layer slot (per CPU) counts, of TOP_COUNTERS
SLOT_COUNTERS = ("requests", "errors", "dumps", "dump_intr", "msgs_in", "msgs_out", "bytes_in",
                 "bytes_out", "lock_wait_ns")


def _comm(chars):
    return bytes(chars).split(b"\0", 1)[0].decode("utf-8", "replace")


def read_top(capture):
    """Cumulative per-process counters from the kernel: {pid: dict}, {(pid, proto, type): n}.
    On the socket layer, each CPU's slot holds counts not yet flushed to the maps: added in.

    lat_max_ns is the largest latency since the previous read (0: none), not since the
    start: each read closes the kernel's interval (top_epoch) and opens the next. A
    request that ends in the microseconds between the counters' read and the epoch's
    change is counted in the next interval, its latency in this one's maximum."""
    rows = {}
    epochs = capture.bpf["top_epoch"]
    epoch = epochs[ct.c_int(0)].value
    for key, val in capture.bpf["top"].items():
        row = {name: getattr(val, name) for name in TOP_COUNTERS}
        row["comm"] = _comm(val.comm)
        row["lat_max_ns"] = val.lat_max_ns if val.lat_max_epoch == epoch else 0
        row["hist"] = list(val.lat_hist)
        rows[key.value] = row
    types = {(k.pid, k.proto, k.type): v.value for k, v in capture.bpf["top_types"].items()}
    if capture.layer == "sock":
        for slot in capture.bpf["top_slots"][ct.c_int(0)]:
            if not slot.pid:
                continue
            row = rows.get(slot.pid)
            if row is None:
                row = rows[slot.pid] = {name: 0 for name in TOP_COUNTERS}
                row.update(comm=_comm(slot.comm), lat_max_ns=0, hist=[0] * LAT_BUCKETS)
            for name in SLOT_COUNTERS:
                row[name] += getattr(slot, name)
            if slot.type_count:
                key = (slot.pid, slot.proto, slot.type)
                types[key] = types.get(key, 0) + slot.type_count
    epochs[ct.c_int(0)] = epochs.Leaf(epoch + 1)
    return rows, types


def top_pids(capture):
    """The processes the kernel keeps top counters for."""
    pids = [k.value for k in capture.bpf["top"].keys()]
    if capture.layer == "sock":
        pids += [slot.pid for slot in capture.bpf["top_slots"][ct.c_int(0)]
                 if slot.pid and slot.pid not in pids]
    return pids


def gone_pids(capture):
    """The processes whose counters can be forgotten: gone, and held in no CPU's slot.
    (Socket layer: a slot holds a process's counts not yet flushed to the maps, until
    another process takes it. Forgetting the map's entry while a slot still holds the
    process would bring those counts back on their own, at the next read or flush, as
    if new: counted twice.)"""
    held = set()
    if capture.layer == "sock":
        held = {slot.pid for slot in capture.bpf["top_slots"][ct.c_int(0)] if slot.pid}
    return [pid for pid in top_pids(capture)
            if pid not in held and not os.path.exists(f"/proc/{pid}")]


def forget_pids(capture, pids):
    """Drop the kernel's counters of processes that are gone."""
    top = capture.bpf["top"]
    for pid in pids:
        try:
            del top[top.Key(pid)]
        except KeyError:
            pass
    gone = set(pids)
    for name in ("top_types", "top_errs"):
        try:
            table = capture.bpf[name]
        except KeyError:
            continue            # top_errs: only with counts=("errno",)
        for k in [k for k in table.keys() if k.pid in gone]:
            try:
                del table[k]
            except KeyError:
                pass


def read_top_errs(capture):
    """Cumulative failed requests: {(pid, proto, type, errno): n} (counts=("errno",))."""
    return {(k.pid, k.proto, k.type, -k.err): v.value
            for k, v in capture.bpf["top_errs"].items()}


def read_type_hists(capture):
    """Cumulative latency and lock wait per request type: {(proto, type): dict} with
    count, lat_sum_ns, lock_sum_ns and the log2 histograms lat_hist, lock_hist
    (counts=("type_hist",); empty on the socket layer, which sees no request start)."""
    return {(k.proto, k.type): {"count": v.count, "lat_sum_ns": v.lat_sum_ns,
                                "lock_sum_ns": v.lock_sum_ns, "lat_hist": list(v.lat_hist),
                                "lock_hist": list(v.lock_hist)}
            for k, v in capture.bpf["type_hists"].items()}
