"""slow's last mile, without a kernel: the kworker holding the lock named by its work
function (kallsyms), and the same thread's next requests shown after a slow one."""
import io
import json
import struct
import subprocess
import sys

from nlbpf.capture.abi import DEFINES
from nlbpf.capture.ksyms import KernelSymbols
from nlbpf.commands.slow import holder, holder_text
from nlbpf.decode import GenlFamilies
from nlbpf.files.recording import CaptureWriter
from nlbpf.model import REPLY, REQUEST, Message

NLBPF = [sys.executable, "-m", "nlbpf.cli"]
MS = 1_000_000
AFTER_SLOW_NS, AFTER_SLOW_COUNT = DEFINES["AFTER_SLOW_NS"], DEFINES["AFTER_SLOW_COUNT"]


def test_a_work_function_is_named_from_kallsyms(tmp_path):
    syms = tmp_path / "kallsyms"
    syms.write_text("ffffffff81000000 T _stext\n"
                    "ffffffff81a00000 t cleanup_net\n"
                    "ffffffff81a00400 T rtnl_lock\n"
                    "ffffffff82000000 D some_data\n")
    ks = KernelSymbols(str(syms))
    assert ks.name(0xffffffff81a00000) == "cleanup_net"
    assert ks.name(0xffffffff81a00010) == "cleanup_net+0x10"
    assert ks.name(0xffffffff81a00400) == "rtnl_lock"
    assert ks.name(0x1000) == "0x1000" and ks.name(0) == ""
    # kptr_restrict: every address reads 0, so none can be named
    hidden = tmp_path / "hidden"
    hidden.write_text("0000000000000000 t cleanup_net\n")
    assert KernelSymbols(str(hidden)).name(0xffffffff81a00000) == "0xffffffff81a00000"
    assert KernelSymbols(str(tmp_path / "absent")).name(0xffffffff81a00000) == "0xffffffff81a00000"


def test_the_holder_is_said_with_what_it_was_running():
    assert holder_text(holder(37, "kworker/u8:2", "cleanup_net")) == \
        "mutex held by kworker/u8:2 37, running cleanup_net"
    assert holder(1234, "ip", "") == {"pid": 1234, "comm": "ip", "work": None}
    assert holder_text(holder(1234, "ip", "")) == "mutex held by ip 1234"


def nlmsg(type_, flags, seq, payload=b""):
    return struct.pack("=IHHII", 16 + len(payload), type_, flags, seq, 0) + payload


def message(direction, data, ts, tid=500, **kw):
    base = dict(ts_ns=ts, pid=tid, tid=tid, comm="ip", protocol=0, direction=direction,
                data=data, length=len(data), netns=1, sock=0xabc, portid=tid,
                syscall="sendmsg" if direction == REQUEST else "recvmsg")
    base.update(kw)
    return Message(**base)


def exchange(seq, start, end, tid=500, errno=0, type_=16):
    req = nlmsg(type_, 0x5, seq, bytes(16))
    ack = nlmsg(2, 0x100, seq, struct.pack("=i", -errno) + req[:16])
    return [message(REQUEST, req, start, tid), message(REPLY, ack, end, tid,
                                                        lock_wait_ns=end - start - 1000,
                                                        lock_holder_pid=37,
                                                        lock_holder_comm="kworker/u8:2",
                                                        lock_holder_work="cleanup_net")]


def test_after_a_slow_request_the_threads_next_ones_are_shown(tmp_path):
    records = exchange(0, 1000 * MS, 7400 * MS, errno=19)          # the probe: waited 6.4 s
    for i in range(AFTER_SLOW_COUNT + 1):                           # then fast ones
        records += exchange(10 + i, 7401 * MS + i * MS, 7401 * MS + i * MS + 50_000)
    records += exchange(20, 7400 * MS, 7400 * MS + 20_000, tid=600)   # another thread's
    records += exchange(0, 9000 * MS, 16000 * MS, tid=700, errno=19)   # slow again, elsewhere
    records += exchange(30, 16000 * MS + AFTER_SLOW_NS + MS, 16000 * MS + AFTER_SLOW_NS + 2 * MS,
                        tid=700)                                    # too late to be its next
    buf = io.BytesIO()
    w = CaptureWriter(buf, fmt="pcapng", snaplen=1024, offset_ns=0,
                      families=GenlFamilies(), filters="", describe=lambda *a: {})
    for rec in records:
        w.write(rec)
    w.close({"emitted": len(records), "lost": 0}, now_ns=20000 * MS)
    path = tmp_path / "slow.pcapng"
    path.write_bytes(buf.getvalue())
    proc = subprocess.run(NLBPF + ["read", str(path), "--view", "slow", "--threshold", "1s",
                                   "--json"], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in proc.stdout.splitlines()]
    slow = [r for r in recs if not r["after_slow"]]
    after = [r for r in recs if r["after_slow"]]
    assert [(r["tid"], r["seq"]) for r in slow] == [(500, 0), (700, 0)]
    assert slow[0]["holder"] == {"pid": 37, "comm": "kworker/u8:2", "work": "cleanup_net"}
    assert "(mutex held by kworker/u8:2 37, running cleanup_net)" in slow[0]["summary"]
    # the next AFTER_SLOW_COUNT of thread 500, not a fourth, nor thread 600's, nor one
    # that came too late
    assert [(r["tid"], r["seq"]) for r in after] == [(500, 10 + i) for i in range(AFTER_SLOW_COUNT)]
    assert all(r["summary"].endswith("— after the slow one, the same thread's next")
               for r in after)
