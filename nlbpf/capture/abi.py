"""The probes' constants, read from bpf/nlbpf.h, the one place they are declared.

Event kinds (EV_*), event flags (EVF_*), syscalls (SC_*), counters (ST_*) and the
like are #defines there; the event struct's layout comes from bcc, which parses the
same header. Nothing here is written twice.
"""
import re
from pathlib import Path

HEADER = Path(__file__).resolve().parent.parent / "bpf" / "nlbpf.h"


def read_defines(text):
    """{name: value} of the header's plain numeric #defines."""
    return {m.group(1): int(m.group(2), 0) for m in re.finditer(
        r"^#define\s+([A-Z][A-Z0-9_]*)\s+(0x[0-9a-fA-F]+|\d+)\b", text, re.M)}


def struct_fields(text, name, ctype):
    """The names of struct `name`'s fields of type `ctype`, in order."""
    body = re.search(r"^struct %s \{(.*?)^\};" % name, text, re.M | re.S).group(1)
    return tuple(re.findall(r"^\s*%s\s+(\w+);" % ctype, body, re.M))


_TEXT = HEADER.read_text()
DEFINES = read_defines(_TEXT)
LAT_BUCKETS = DEFINES["LAT_BUCKETS"]
# what top counts per process (struct top_val): every u64 but the latency maximum and
# the interval it belongs to
TOP_COUNTERS = tuple(f for f in struct_fields(_TEXT, "top_val", "u64")
                     if f not in ("lat_max_ns", "lat_max_epoch"))


def prefixed(prefix):
    """{name: value} of the defines whose name starts with prefix."""
    return {k: v for k, v in DEFINES.items() if k.startswith(prefix)}
