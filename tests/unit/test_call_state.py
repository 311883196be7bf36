"""How the syscall layer's probes load. Where they keep a thread's call in flight:
task storage when the kernel lets this layer's programs use it, else (or with the
hidden --call-state hash) the hash map by thread id. How the entry probes walk
fd -> socket: through BTF pointers where the kernel has bpf_rdonly_cast and takes
that build, else by helper reads (or with the hidden --fd-walk helpers)."""
from types import SimpleNamespace

import pytest

from nlbpf.capture import bootcache, btfprog, environment, layers
from nlbpf.capture.loader import Capture
from nlbpf.capture.settings import CaptureSettings
from nlbpf.errors import NlbpfError
from nlbpf.filters import Filters


@pytest.mark.parametrize("kernel_has, choice, flags, state", [
    (True, "auto", ["-DUSE_TASK_STORAGE"], "task storage"),
    (False, "auto", [], "hash map by thread id"),
    (True, "hash", [], "hash map by thread id"),
])
def test_call_state_follows_the_kernel_and_the_override(monkeypatch, kernel_has,
                                                        choice, flags, state):
    asked = []
    monkeypatch.setattr(layers, "have_task_storage", lambda layer: asked.append(layer) or kernel_has)
    capture = Capture(mode="errors", filters=Filters(), settings=CaptureSettings(call_state=choice))
    assert capture._call_state("kprobe") == flags
    assert capture.call_state == state
    assert asked in ([], ["kprobe"])


def test_task_storage_probe_answers_per_layer_without_raising():
    layers.have_task_storage.cache_clear()
    for layer in ("syscall", "kprobe", "fentry"):
        assert layers.have_task_storage(layer) in (True, False)


class Slots(dict):
    """A prog array as bcc's table: ctypes keys and values."""

    def __setitem__(self, key, value):
        super().__setitem__(key.value, value.value)


class FakeModule:
    """What the syscall layer's loading asks of a compiled bcc module: a function's
    instructions, the table of loaded functions, where each was attached, a map."""

    def __init__(self, flags=()):
        self.flags, self.funcs, self.attached, self.progs = list(flags), {}, {}, Slots()
        self.cleaned = False
        # bcc's attachment tables, which Capture.detach empties side by side
        self.tracepoint_fds, self.raw_tracepoint_fds, self.kprobe_fds = {}, {}, {}
        self.kfunc_entry_fds, self.kfunc_exit_fds = {}, {}

    def dump_func(self, name):
        return b"\x85\x00\x00\x00\xf0\x7f\x00\x00" + b"\x95" + b"\0" * 7    # call marker; exit

    def attach_tracepoint(self, tp, fn_name):
        fn = self.funcs.get(fn_name)
        self.attached[tp.decode()] = fn.fd if fn else "bcc"

    def __getitem__(self, name):
        return self.progs

    def cleanup(self):
        self.cleaned = True


# the bcc module stand-in: bcc.BPF.Function(module, name, fd)
FAKE_BCC = SimpleNamespace(BPF=SimpleNamespace(
    Function=lambda bpf, name, fd: SimpleNamespace(name=name, fd=fd)))
ENTRIES = [f"syscalls:sys_enter_{c}" for c in layers.SYSCALL_ENTRIES]
SOCKET_ENTRIES = [f"syscalls:sys_enter_{c}" for c in layers.SOCKET_CALLS]


def fake_syscall_load(monkeypatch, compiled, kfunc):
    """_load_syscall without bcc or a kernel: each compile appends a FakeModule to
    compiled; the walkers load as fds 1 and 2."""
    monkeypatch.setattr(layers, "have_lock_tracepoints", lambda: True)
    monkeypatch.setattr(Capture, "_walk_facts", lambda self: {"types": {}, "kfunc": kfunc})
    monkeypatch.setattr(Capture, "_compile", lambda self, bcc, source, flags:
                        compiled.append(FakeModule(flags)) or compiled[-1])
    monkeypatch.setattr(Capture, "_load_together", lambda self, bcc, names:
                        [SimpleNamespace(fd=1), SimpleNamespace(fd=2)])


def fake_load(loaded, refuse_at=None):
    """btfprog.load: fds from 100 on; NlbpfError for the refuse_at'th program."""
    def load(insns, name, attach_type, btf_id, prog_type):
        assert prog_type == btfprog.BPF_PROG_TYPE_TRACEPOINT and name.startswith("nl_btf_")
        assert insns[1] >> 4 == btfprog.BPF_PSEUDO_KFUNC_CALL and insns[4] == 77   # patched
        if len(loaded) == refuse_at:
            raise NlbpfError(f"cannot load {name}: Invalid argument")
        loaded.append(100 + len(loaded))
        return loaded[-1]
    return load


@pytest.mark.parametrize("kfunc, choice, refused, expect", [
    (77, "auto", None, (77, "BTF loads")),
    (0, "auto", None, (0, "helper reads (no bpf_rdonly_cast: Linux 6.2+)")),
    (77, "helpers", None, (0, "helper reads (asked for)")),
    (77, "auto", "helper reads (refused)", (0, "helper reads (refused)")),   # until reboot
])
def test_the_fd_walk_follows_the_kernel_and_the_override(monkeypatch, kfunc, choice,
                                                         refused, expect):
    monkeypatch.setattr(bootcache, "get", lambda name: refused)
    capture = Capture(mode="trace", filters=Filters(), settings=CaptureSettings(fd_walk=choice))
    assert capture._fd_walk({"types": {"FILE_ID": 1, "SOCKET_ID": 2}, "kfunc": kfunc}) == expect


def test_the_btf_build_is_loaded_here_and_attached_by_bcc(monkeypatch):
    loaded = []
    monkeypatch.setattr(btfprog, "load", fake_load(loaded))
    capture = Capture(mode="trace", filters=Filters())
    capture.bpf = FakeModule()
    capture._attach_entries(FAKE_BCC, 77)
    assert sorted(capture.bpf.attached.values()) == loaded and list(capture.bpf.attached) == ENTRIES


def test_the_helper_build_is_bccs_to_load(monkeypatch):
    monkeypatch.setattr(btfprog, "load", fake_load([], refuse_at=0))
    capture = Capture(mode="trace", filters=Filters())
    capture.bpf = FakeModule()
    capture._attach_entries(FAKE_BCC, 0)
    assert capture.bpf.attached == {tp: "bcc" for tp in ENTRIES}


def test_a_refused_btf_build_falls_back_to_helper_reads_until_reboot(monkeypatch):
    loaded, closed, remembered, compiled = [], [], {}, []
    monkeypatch.setattr(btfprog, "load", fake_load(loaded, refuse_at=3))
    monkeypatch.setattr("nlbpf.capture.loader.os.close", closed.append)
    monkeypatch.setattr(bootcache, "get", lambda name: remembered.get(name))
    monkeypatch.setattr(bootcache, "put", remembered.__setitem__)
    monkeypatch.setattr(environment, "tracepoint_exists", lambda cat, ev: True)
    fake_syscall_load(monkeypatch, compiled, kfunc=77)
    capture = Capture(mode="trace", filters=Filters())
    capture._load_syscall(FAKE_BCC, {})
    assert ["-DFD_WALK_BTF" in m.flags for m in compiled] == [True, False]
    assert compiled[0].cleaned and sorted(closed) == loaded == [100, 101, 102]
    # every tracepoint exists here, sock_send_length too: read/write are counted, not hooked
    assert capture.bpf is compiled[1] and capture.bpf.attached == {tp: "bcc" for tp in SOCKET_ENTRIES}
    assert capture.bpf.progs == {0: 1, 1: 2}                    # the walkers, in their slots
    assert capture.fd_walk.startswith("helper reads (the BTF-load build was refused: cannot load")
    assert list(remembered.values()) == [capture.fd_walk]
    # the next start goes straight to the helper build
    compiled.clear()
    Capture(mode="trace", filters=Filters())._load_syscall(FAKE_BCC, {})
    assert ["-DFD_WALK_BTF" in m.flags for m in compiled] == [False]


@pytest.mark.parametrize("rw, have_unseen, hooked", [
    ("auto", True, False), ("auto", False, True), ("on", True, True), ("off", False, False),
])
def test_read_and_write_are_hooked_where_nothing_else_would_count_them(
        monkeypatch, rw, have_unseen, hooked):
    """--rw: read(), write() and their vector forms cost every process's file I/O when
    hooked; auto hooks them only where sock:sock_{send,recv}_length (6.7+) cannot count
    the netlink calls made through them, and says so when they are counted instead."""
    compiled = []
    monkeypatch.setattr(environment, "tracepoint_exists",
                        lambda cat, ev: cat != "sock" or have_unseen)
    fake_syscall_load(monkeypatch, compiled, kfunc=0)
    capture = Capture(mode="trace", filters=Filters(), settings=CaptureSettings(rw=rw))
    capture._load_syscall(FAKE_BCC, {})
    assert capture.rw_hooked is hooked
    assert ("-DHOOK_RW" in compiled[0].flags) is hooked
    assert ("-DHAVE_SOCK_LENGTH" in compiled[0].flags) is have_unseen
    want = layers.SYSCALL_ENTRIES if hooked else layers.SOCKET_CALLS
    assert list(capture.bpf.attached) == [f"syscalls:sys_enter_{c}" for c in want]
    # whatever is not hooked is said once, at the start: counted, or (asked for) not even that
    assert len(capture.notes) == (0 if hooked else 1)
    assert all(("--rw on shows them" if have_unseen else "neither shown nor counted") in n
               for n in capture.notes)
