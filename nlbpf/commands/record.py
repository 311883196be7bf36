"""nlbpf record: write every netlink message (and failed calls, extack texts) to a
pcapng file Wireshark opens, with the process of each packet in its comment.

See nlbpf/files/recording.py for the file layout; `nlbpf read FILE` replays it.
"""
import os
import stat
import sys

from ..files.recording import CaptureWriter
from ..errors import NlbpfError
from ..model import Message
from ..secrets import SECRET_PROTOCOLS, scrub_live
from .live import DRAIN_S, Outcome, OutputError, output_closed, run, wall_offset_ns
from .common import capture_args
from ..capture import environment
from ..decode import GenlFamilies
from ..places import live_context


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


def _families():
    return GenlFamilies.live()


def _made(c, name):
    """`14 messages written to F (and 1 extack texts)`"""
    made = f"{c['messages']} messages written to {name}"
    extra = []
    if c["syscall_errors"]:
        extra.append(f"{c['syscall_errors']} failed calls")
    if c["extacks"]:
        extra.append(f"{c['extacks']} extack texts")
    return made + (" (and " + ", ".join(extra) + ")" if extra else "")


def _close_quietly(f):
    """Close the file; what a full disk keeps it from flushing is already reported."""
    try:
        if not f.closed:
            f.close()
    except OSError:
        pass


def run_record(write, fmt, as_json, duration, filters, snaplen, capture, drain=None,
               show_secrets=False, command=None, **_):
    if as_json:
        raise NlbpfError("record writes a capture file; --json does not apply "
                         "(read it back with: nlbpf read FILE --json)", exit_code=2)
    environment.require_root()      # before the file is created
    args = capture_args("trace", filters, snaplen, capture)
    out, name, created = _open_output(write)
    writer = None
    def write_failed(e):
        if isinstance(e, BrokenPipeError):
            output_closed()
        raise OutputError(f"cannot write {name}: {e.strerror or e}") from None

    try:
        families = _families()
        try:
            writer = CaptureWriter(out, fmt=fmt, snaplen=args["snaplen"],
                                   offset_ns=wall_offset_ns(),
                                   families=families, filters=filters.describe(),
                                   describe=live_context().describe,
                                   secrets="shown" if show_secrets else "redacted")
        except OSError as e:
            # the output is gone before the capture began (`| head -c 100` read the
            # header): nothing was captured, and the closing line says so
            gone = Outcome(why=["the output was closed" if isinstance(e, BrokenPipeError)
                                else "the file cannot be written"], output_gone=True)
            print(gone.closing_line(_made({"messages": 0, "syscall_errors": 0, "extacks": 0},
                                          name), verb="written"), file=sys.stderr, flush=True)
            write_failed(e)

        def on_record(rec):
            if isinstance(rec, Message) and rec.protocol in SECRET_PROTOCOLS and not show_secrets:
                # key material never reaches the file (unless --show-secrets)
                scrub_live(rec, families)
            try:
                writer.write(rec)
            except OSError as e:
                write_failed(e)

        def on_tick(stats):
            try:
                out.flush()
            except OSError as e:
                write_failed(e)

        def on_end(outcome):
            # the file's trailer (the kernel's counts), then the closing line, whatever
            # ended the run: a closed pipe or a full disk still says what was seen
            try:
                if not outcome.output_gone:
                    writer.close({"emitted": outcome.emitted, "lost": outcome.lost,
                                  "walk_truncated": outcome.walk_truncated,
                                  "unseen": outcome.unseen})
                    out.flush()
            except OSError as e:
                outcome.why.append("the file cannot be written")
                write_failed(e)
            finally:
                print(outcome.closing_line(_made(writer.counts, name), verb="written"),
                      file=sys.stderr, flush=True)

        run(args, on_record, duration=duration,
            on_tick=on_tick, on_end=on_end, drain_s=DRAIN_S if drain is None else drain,
            command=command)
    except NlbpfError as e:
        if created and (writer is None or writer.packets == 0) and e.exit_code:
            _close_quietly(out)
            os.unlink(created)
        raise
    finally:
        if out is not sys.stdout.buffer:
            _close_quietly(out)
    c = writer.counts
    if c["not_kept"]:
        print(f"nlbpf: warning: {c['not_kept']} failed calls/extack texts are not in {name}: "
              f"classic pcap cannot hold them (nor comm, netns or timing); use pcapng",
              file=sys.stderr, flush=True)

