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


DEFINES = read_defines(HEADER.read_text())


def prefixed(prefix):
    """{name: value} of the defines whose name starts with prefix."""
    return {k: v for k, v in DEFINES.items() if k.startswith(prefix)}
