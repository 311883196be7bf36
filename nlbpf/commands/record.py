"""nlbpf record: write every netlink message (and failed calls, extack texts) to a
pcapng file Wireshark opens, with the process of each packet in its comment.

See nlbpf/capfile.py for the file layout; `nlbpf read FILE` replays it.
"""
import os
import stat
import sys

from ..capfile import CaptureWriter
from ..errors import NlbpfError
from ..model import Message
from ..secrets import SECRET_PROTOCOLS, scrub_live, shown
from ..session import output_closed, run, wall_offset_ns
from .common import capture_args


def _open_output(path):
    """(file object, display name, created path or None)."""
    if path == "-":
        if sys.stdout.isatty():
            raise NlbpfError("refusing to write a binary capture to a terminal: give -w FILE, "
                             "or pipe it (nlbpf record -w - | wireshark -k -i -)", exit_code=2)
        return sys.stdout.buffer, "stdout", None
    try:
        existed = os.path.exists(path)
        f = open(path, "wb", buffering=1 << 20)
    except OSError as e:
        raise NlbpfError(f"cannot write {path}: {e.strerror}") from None
    created = path if not existed and stat.S_ISREG(os.fstat(f.fileno()).st_mode) else None
    return f, path, created


def _describe():
    """The live context's describe(), or None when that module is not there."""
    try:
        from ..output.records import where
    except ImportError:
        return None
    return where


def _families():
    from ..decode import GenlFamilies
    return GenlFamilies.live()


def run_record(write, fmt, as_json, duration, filters, snaplen, buffer, **_):
    if as_json:
        raise NlbpfError("record writes a capture file; --json does not apply "
                         "(read it back with: nlbpf read FILE --json)", exit_code=2)
    from ..capture import environment
    environment.require_root()      # before the file is created
    out, name, created = _open_output(write)
    writer = None
    try:
        families = _families()
        writer = CaptureWriter(out, fmt=fmt, snaplen=snaplen, offset_ns=wall_offset_ns(),
                               families=families, filters=filters.describe(),
                               describe=_describe(), secrets="shown" if shown() else "redacted")

        def on_record(rec):
            if isinstance(rec, Message) and rec.protocol in SECRET_PROTOCOLS:
                # key material never reaches the file (unless --show-secrets)
                scrub_live(rec, families)
            try:
                writer.write(rec)
            except BrokenPipeError:
                output_closed()
            except OSError as e:
                raise NlbpfError(f"cannot write {name}: {e.strerror}") from None

        def on_tick(stats):
            try:
                out.flush()
            except BrokenPipeError:
                output_closed()

        stats = run(capture_args("trace", filters, snaplen, buffer), on_record,
                    duration=duration, on_tick=on_tick)
        try:
            writer.close(stats)
        except BrokenPipeError:
            output_closed()
    except NlbpfError as e:
        if created and (writer is None or writer.packets == 0) and e.exit_code:
            out.close()
            os.unlink(created)
        raise
    finally:
        if out is not sys.stdout.buffer and not out.closed:
            out.close()
    c = writer.counts
    summary = (f"nlbpf: {c['messages']} messages written to {name}")
    extra = []
    if c["syscall_errors"]:
        extra.append(f"{c['syscall_errors']} failed calls")
    if c["extacks"]:
        extra.append(f"{c['extacks']} extack texts")
    if extra:
        summary += " (and " + ", ".join(extra) + ")"
    summary += f"; {stats['emitted']} events from the kernel, {stats['lost']} lost"
    print(summary, file=sys.stderr, flush=True)
    if c["not_kept"]:
        print(f"nlbpf: warning: {c['not_kept']} failed calls/extack texts are not in {name}: "
              f"classic pcap cannot hold them (nor comm, netns or timing); use pcapng",
              file=sys.stderr, flush=True)

