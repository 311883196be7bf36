"""The probes' C text for one hook layer: its bpf/<layer>.bpf.c with the shared
bpf/*.bpf.h it includes joined in.

bcc rewrites map calls (`events.ringbuf_output(...)`, `pending.lookup(...)`) only
in the text it is given, not in included files, so the shared pieces cannot stay
#included: they are joined into one text here. `#line` markers keep clang's
errors and warnings pointing at the file and line a person would open (a plain
`#line`, without the GNU "entering an include" flag, leaves the text in bcc's main
file, which is what its rewriter checks). bpf/nlbpf.h (the event layout: no map
calls) stays a real #include, found through -I bpf/.
"""
import hashlib
import re
from functools import lru_cache
from pathlib import Path

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"     # the package's link to bpf/

# one file per hook layer (nlbpf/capture/layers.py names them)
LAYER_FILES = {"syscall": "syscall.bpf.c", "kernel": "kernel.bpf.c", "sock": "sock.bpf.c"}

_INCLUDE = re.compile(r'^#include "([\w-]+\.bpf\.h)"\s*$')


def _join(path, seen, out):
    name = path.name
    out.append(f'#line 1 "bpf/{name}"')
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = _INCLUDE.match(line)
        if not m:
            out.append(line)
            continue
        inc = BPF_DIR / m.group(1)
        if inc.name not in seen:           # each header once, as its guard would have it
            seen.add(inc.name)
            _join(inc, seen, out)
        out.append(f'#line {n + 1} "bpf/{name}"')


@lru_cache(maxsize=None)
def layer_text(layer):
    """The whole C text for `layer` (syscall, kernel or sock)."""
    out = []
    _join(BPF_DIR / LAYER_FILES[layer], set(), out)
    return "\n".join(out) + "\n"


def layer_digest(layer):
    """A digest of that text, for caches keyed by what was compiled."""
    return hashlib.sha1(layer_text(layer).encode()).hexdigest()
