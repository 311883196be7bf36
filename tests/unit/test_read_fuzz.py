"""Every file view over broken and hostile capture files: nothing may raise.

From four real captures (tests/fixtures/pcap: nlbpf's pcapng and an nlmon
capture of one workload; what `nlbpf record` writes for a small one, in pcapng
and classic pcap): cut at every offset, bytes flipped and overwritten, and
captures built from scratch with any block lengths, option values, timestamps,
comments and metadata JSON. Each file goes through trace, errors, slow and top,
text and --json (nlbpf.cli.main in this process; a few in a subprocess), and
every run must end with exit status 0, 1 or 2, no traceback, stderr made of
one-line `nlbpf: ...` messages; what is not a capture must exit non-zero.

Hypothesis runs derandomized with fixed example counts, so CI sees the same
files every time (about 30 s here).
"""
import io
import json
import os
import random
import string
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from tests.helpers import readcheck as rc

from nlbpf.files.recording import CaptureFile
from nlbpf.files.pcap import PcapError

BASES = rc.bases()
MAGICS = (b"\x0a\x0d\x0d\x0a", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
          b"\xa1\xb2\x3c\x4d")
ROOT = Path(__file__).resolve().parents[2]


def fuzz_settings(n):
    return settings(max_examples=n, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def every_view(path, data, sample=None):
    """Writes data to path, runs the views over it, checks each run."""
    path.write_bytes(data)
    out = []
    for argv in rc.views(path, sample):
        result = rc.check(rc.run(*argv))
        if not data.startswith(MAGICS) or len(data) < 8:
            assert result.code and result.code != 0, result
        out.append(result)
    return out


# ------------------------------------------------------------------- cuts
@pytest.mark.parametrize("name", sorted(BASES))
def test_a_cut_at_any_offset_reads_a_prefix_or_says_why(name):
    """The reader, at every offset: records or PcapError, nothing else; cut short
    means a note, except where a block ends."""
    data = BASES[name]
    ends = set(rc.block_ends(data))
    whole = len(list(CaptureFile(io.BytesIO(data), name).records()))
    for cut in range(len(data)):
        try:
            cap = CaptureFile(io.BytesIO(data[:cut]), name)
            recs = list(cap.records())
        except PcapError as e:
            assert "\n" not in str(e)
            continue
        assert len(recs) <= whole
        if cut not in ends:
            assert any("cut short" in n for n in cap.notes), (name, cut)


@pytest.mark.parametrize("name", sorted(BASES))
def test_every_view_over_cut_captures(name, workdir):
    """Every view where blocks end and start (and a byte or three either side); one
    view in turn at the offsets between (every one, or 1,500 a file)."""
    data = BASES[name]
    path = workdir / f"cut-{name}"
    near_ends = sorted({e + d for e in rc.block_ends(data) for d in (-3, -1, 0, 1)
                        if 0 <= e + d < len(data)})
    for i, cut in enumerate(near_ends):
        every_view(path, data[:cut], sample=None if i % 4 == 0 else i)
    step = max(1, len(data) // 1500)
    cuts = sorted(set(range(0, len(data), step)) | set(range(min(64, len(data)))))
    for i, cut in enumerate(cuts):
        every_view(path, data[:cut], sample=i)


# -------------------------------------------------------------- mutations
@fuzz_settings(800)
@given(name=st.sampled_from(sorted(BASES)),
       edits=st.lists(st.tuples(st.sampled_from(["flip", "byte", "splice", "cut", "len"]),
                                st.integers(0, 1 << 20), st.integers(0, 255),
                                st.binary(max_size=24)), min_size=1, max_size=6),
       view=st.integers(0, 100))
def test_every_view_over_mutated_captures(workdir, name, edits, view):
    data = bytearray(BASES[name])
    for kind, pos, value, blob in edits:
        pos %= max(1, len(data))
        if kind == "flip":
            data[pos] ^= 1 << (value & 7)
        elif kind == "byte":
            data[pos] = value
        elif kind == "splice":
            data[pos:pos + len(blob)] = blob
        elif kind == "cut":
            del data[pos:pos + value]
        elif kind == "len":
            # a length field (every block's is 4-aligned): a value on some edge
            n = [0, 1, 11, 12, 13, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 28, 32][value % 10]
            at = pos - pos % 4
            if at + 4 <= len(data):
                struct.pack_into("<I", data, at, n)
    every_view(workdir / "mutated", bytes(data), sample=view)
    every_view(workdir / "mutated", bytes(data), sample=view + 1)


# ------------------------------------------------------ built from scratch
def json_values(max_leaves=12):
    return st.recursive(
        st.none() | st.booleans() | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                     max_size=4),
        max_leaves=max_leaves)


@st.composite
def metadata(draw):
    """nlbpf-meta's JSON: what nlbpf writes with fields changed, any JSON, deep nests,
    or not JSON at all."""
    kind = draw(st.sampled_from(["fields", "any", "deep", "text"]))
    if kind == "deep":
        depth = draw(st.sampled_from([17, 100, 1000, 10000]))
        opener = draw(st.sampled_from(["[", '{"a":', '{"genl_families":[']))
        return (opener * depth)[:65000]         # an option holds at most 65,535 bytes
    if kind == "text":
        return draw(st.text(max_size=40))
    if kind == "any":
        return json.dumps(draw(json_values()))
    meta = {"v": 1, "nlbpf": "0.1.0", "offset_ns": 1_700_000_000 * 10**9, "snaplen": 1024,
            "filters": "", "genl_families": [[16, "nlctrl", 2, [[16, "notify"]]],
                                              [20, "netdev", 1, []]]}
    for key in draw(st.lists(st.sampled_from(sorted(meta)), max_size=4)):
        meta[key] = draw(json_values(4))
    if draw(st.booleans()):
        meta["genl_families"] = draw(st.lists(json_values(6), max_size=4))
    text = json.dumps(meta)
    if draw(st.booleans()):
        text = text.replace('"nlctrl"', '"\\ud800nl"')         # a lone surrogate, escaped
    return text


FIELDS = ["pid", "comm", "tid", "dir", "netns", "cgroup", "portid", "sock", "syscall", "ret",
          "dur_ns", "lock_wait_ns", "holder_pid", "holder_comm", "skipped_parts",
          "skipped_bytes", "skipped_intr", "split", "groups", "len", "handler_ns", "dump_ns",
          "in_handler", "start_slack_ns", "start_known", "event", "errno", "text", "seq",
          "where", "protocol", "dropped", "peer_portid", "peer_pid", "overlong"]
VALUES = st.one_of(
    st.integers(-(2**80), 2**80).map(str),
    st.integers(0, 2**32).map(hex),
    st.sampled_from(["request", "reply", "notify", "from_user", "to_user", "syscall_error",
                     "extack", "context", "0", "1", "true", "", "-", "0x", "1e9", "٣"]),
    st.text(max_size=10).map(json.dumps),
    st.text(max_size=10).map(lambda t: json.dumps(t).replace("a", "\\ud800")),
    st.just('"' + "\\ud800" * 3 + '"'),
    st.just('"{\\"netns_name\\": \\"x\\", \\"container\\": {\\"id\\": 5}}"'),
    st.just('"' + "[" * 3000 + '"'),
    st.text(alphabet=string.printable, max_size=8).filter(lambda t: " " not in t),
)


@st.composite
def comment(draw):
    pairs = [(k, draw(VALUES)) for k in draw(st.lists(st.sampled_from(FIELDS), max_size=14))]
    if draw(st.booleans()):
        pairs = [("pid", "4242"), ("dir", draw(st.sampled_from(["request", "reply", "notify"])))] \
            + pairs
    text = " ".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        bad = draw(st.binary(max_size=6))       # bad UTF-8 somewhere in it
        at = draw(st.integers(0, len(text)))
        text = text[:at] + bad + text[at:]
    return text


@st.composite
def netlink(draw):
    """One or a few netlink messages, their lengths true or not."""
    out = b""
    for _ in range(draw(st.integers(1, 3))):
        payload = draw(st.binary(max_size=48))
        length = draw(st.one_of(st.just(16 + len(payload)), st.integers(0, 0xFFFFFFFF)))
        out += struct.pack("=IHHII", length, draw(st.sampled_from([2, 3, 16, 18, 24, 26, 0x7777])),
                           draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 3)),
                           draw(st.sampled_from([0, 4242, 555]))) + payload
    if draw(st.booleans()):
        out = out[:draw(st.integers(0, len(out)))]
    return out


U64 = st.integers(0, 2**64 - 1)


@st.composite
def pcapng_capture(draw):
    blocks = [rc.shb([draw(st.sampled_from(["Recorded by nlbpf", "", "x" * 300]))]
                     + ["nlbpf-meta " + draw(metadata())] * draw(st.integers(0, 2)),
                     major=draw(st.sampled_from([1, 1, 1, 2])))]
    for _ in range(draw(st.integers(0, 2))):
        blocks.append(rc.idb(linktype=draw(st.sampled_from([253, 253, 1, 0xFFFF])),
                             snaplen=draw(st.integers(0, 2**32 - 1)),
                             tsresol=draw(st.one_of(st.none(), st.integers(0, 255))),
                             tsoffset=draw(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))),
                             name=draw(st.one_of(st.none(), st.binary(max_size=10)))))
    ticks = draw(st.sampled_from([0, 10**18, 2**63, 2**64 - 1]))
    for _ in range(draw(st.integers(0, 6))):
        ticks = draw(st.one_of(st.just(ticks + 1000), U64))
        data = rc.cooked(draw(st.sampled_from([0, 0, 16, 4, 31])),
                         draw(st.sampled_from([4, 0, 2]))) + draw(netlink())
        kind = draw(st.sampled_from(["epb", "epb", "epb", "spb", "isb", "other", "lie"]))
        comments = draw(st.lists(comment(), max_size=2))
        if kind == "epb":
            blocks.append(rc.epb(data, ticks, comments, iface=draw(st.sampled_from([0, 0, 1, 9])),
                                 orig=draw(st.one_of(st.none(), st.integers(0, 2**32 - 1))),
                                 flags=draw(st.one_of(st.none(), st.integers(0, 2**32 - 1)))))
        elif kind == "spb":
            blocks.append(rc.block(rc.SPB, struct.pack("<I", draw(st.integers(0, 2**32 - 1)))
                                   + data + b"\0" * (-len(data) & 3)))
        elif kind == "isb":
            blocks.append(rc.isb(draw(st.integers(0, 3)), draw(st.one_of(st.none(), U64)),
                                 draw(st.one_of(st.none(), U64))))
        elif kind == "other":
            blocks.append(rc.block(draw(st.integers(0, 2**32 - 1)), draw(st.binary(max_size=16))
                                   .ljust(16, b"\0")))
        else:
            body = rc.epb(data, ticks, comments)[8:-4]
            blocks.append(rc.block(rc.EPB, body, total=draw(st.integers(0, 2**32 - 1)),
                                   trailer=draw(st.one_of(st.none(), st.integers(0, 2**32 - 1)))))
    return rc.pcapng(*blocks)


@st.composite
def pcap_capture(draw):
    magic = draw(st.sampled_from([rc.PCAP_NS, 0xA1B2C3D4]))
    packets = []
    for _ in range(draw(st.integers(0, 6))):
        data = rc.cooked(draw(st.sampled_from([0, 16, 9])), draw(st.sampled_from([4, 0, 2, 7]))) \
            + draw(netlink())
        if draw(st.booleans()):
            data = data[:draw(st.integers(0, len(data)))]
        packets.append((draw(st.integers(0, (2**32 - 1) * 10**9)), data,
                        draw(st.one_of(st.just(len(data)), st.integers(0, 2**32 - 1)))))
    out = rc.pcap(packets, linktype=draw(st.sampled_from([253, 253, 1, 0xFFFFFFFF])),
                  snaplen=draw(st.integers(0, 2**32 - 1)), magic=magic)
    if draw(st.booleans()):
        out += draw(st.binary(max_size=20))
    return out


@fuzz_settings(800)
@given(data=st.one_of(pcapng_capture(), pcap_capture()), view=st.integers(0, 100))
def test_every_view_over_captures_built_from_scratch(workdir, data, view):
    every_view(workdir / "built", data, sample=view)
    every_view(workdir / "built", data, sample=view + 9)


@fuzz_settings(200)
@given(data=st.binary(max_size=64))
def test_what_is_not_a_capture_exits_non_zero_in_one_line(workdir, data):
    assume(not data.startswith(MAGICS) or len(data) < 8)
    for result in every_view(workdir / "junk", data):
        assert result.code == 1 and len(result.err.splitlines()) == 1, result


# ------------------------------------------------------------- subprocess
def test_a_sample_in_a_real_process(workdir):
    """The same checks as the in-process runs, on a few mutated files, in a real
    process with real pipes: the interpreter's own exit path and stream encodings."""
    rnd = random.Random(23)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for i, view in enumerate(rc.VIEWS * 2):
        data = bytearray(BASES[sorted(BASES)[i % len(BASES)]])
        for _ in range(3):
            data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        path = workdir / f"sub{i}"
        path.write_bytes(bytes(data))
        argv = ["read", str(path), "--view", view] + (["--json"] if i % 2 else []) \
            + (["--threshold", "0"] if view == "slow" else [])
        out = subprocess.run([sys.executable, "-m", "nlbpf.cli"] + argv, capture_output=True,
                             env=env, cwd=str(ROOT), timeout=60)
        err = out.stderr.decode("utf-8", "replace")
        assert "Traceback" not in err, (argv, err)
        assert out.returncode in (0, 1, 2), (argv, err)
        assert all(line.startswith("nlbpf: ") for line in err.splitlines()), (argv, err)
