"""RingReader against a real BPF ring buffer: a one-page ring that a probe fills
with numbered records of changing sizes (some reserved and discarded), read by
mapping its pages. Every record arrives once, whole and in order, across many
wrap-arounds; records the probe could not write are the kernel's count, and
the reader goes on after them."""
import os

import pytest

from nlbpf.capture import environment
from nlbpf.capture.ringbuf import RingReader, supported

PROBE = r"""
struct rec { u32 seq; u32 len; u8 fill[248]; };   /* 256 bytes: any len & 0xff fits */
BPF_RINGBUF_OUTPUT(rb, 1);
BPF_ARRAY(scratch, struct rec, 1);
BPF_ARRAY(lost, u64, 1);

TRACEPOINT_PROBE(syscalls, sys_enter_getpgid)
{
    if ((bpf_get_current_pid_tgid() >> 32) != TGID)
        return 0;
    u32 seq = args->pid - BASE;
    if (seq % 5 == 4) {             /* reserved, then given up */
        struct rec *r = rb.ringbuf_reserve(sizeof(struct rec));
        if (r)
            rb.ringbuf_discard(r, 0);
        return 0;
    }
    int zero = 0;
    struct rec *r = scratch.lookup(&zero);
    if (!r)
        return 0;
    r->seq = seq;
    u32 len = 8 + (seq * 37) % 200;
    r->len = len;
    __builtin_memset(r->fill, seq & 0xff, sizeof(r->fill));
    asm volatile("" : "+r"(len));   /* keep clang from dropping the mask the verifier needs */
    if (rb.ringbuf_output(r, len & 0xff, 0)) {
        u64 *n = lost.lookup(&zero);
        if (n)
            __sync_fetch_and_add(n, 1);
    }
    return 0;
}
"""
BASE = 1 << 22          # above pid_max's default: getpgid() finds no such process


@pytest.fixture
def probe():
    why = supported()
    if why:
        pytest.skip(f"the ring is read through bcc's callback here: {why}")
    bcc = environment.import_bcc()
    environment.kernel_headers()            # as the loader finds them (scripts/setup.sh)
    environment.require_tracefs()
    b = bcc.BPF(text=PROBE.encode(), cflags=[f"-DTGID={os.getpid()}", f"-DBASE={BASE}"])
    table = b["rb"]
    reader = RingReader.from_map(table.map_fd, table.max_entries)
    yield b, reader
    reader.close()
    b.cleanup()


def fire(seqs):
    for seq in seqs:
        try:
            os.getpgid(BASE + seq)
        except ProcessLookupError:
            pass


def expected(seq):
    length = 8 + (seq * 37) % 200
    return seq, length, bytes([seq & 0xff]) * (length - 8)    # fill, cut at len


def parse(buf, off, size):
    seq, length = int.from_bytes(buf[off:off + 4], "little"), int.from_bytes(buf[off + 4:off + 8], "little")
    assert size == length
    return seq, length, bytes(buf[off + 8:off + size])


def test_every_record_arrives_whole_and_in_order_across_wrap_arounds(probe):
    b, reader = probe
    got = []
    for start in range(0, 3000, 10):        # ~10 records (<= 2.6 KB) per round in a 4 KB ring
        fire(range(start, start + 10))
        reader.fill()
        reader.each(lambda buf, off, size: got.append(parse(buf, off, size)), 1000)
    assert b["lost"][0].value == 0
    assert got == [expected(s) for s in range(3000) if s % 5 != 4]
    assert reader.backlog == 0


def test_after_an_overflow_the_kernel_counts_the_loss_and_reading_goes_on(probe):
    b, reader = probe
    fire(range(0, 200))                     # ~20 KB into 4 KB: most cannot be written
    lost = b["lost"][0].value
    got = []
    reader.fill()
    reader.each(lambda buf, off, size: got.append(parse(buf, off, size)), 1000)
    assert lost > 0 and got
    written = [s for s in range(200) if s % 5 != 4]
    assert len(got) + lost == len(written)
    assert got == [expected(s) for s, _, _ in got]          # whole records, in order
    assert [s for s, _, _ in got] == sorted(s for s, _, _ in got)
    fire(range(200, 210))                   # room again
    after = []
    reader.fill()
    reader.each(lambda buf, off, size: after.append(parse(buf, off, size)), 1000)
    assert after == [expected(s) for s in range(200, 210) if s % 5 != 4]
