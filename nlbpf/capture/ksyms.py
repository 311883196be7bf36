"""Kernel function names for the addresses the probes hand over (what a kworker that
holds a lock is running: its work item's function, e.g. cleanup_net)."""
import bisect

KALLSYMS = "/proc/kallsyms"


class KernelSymbols:
    """/proc/kallsyms' functions, read the first time an address is asked about."""

    def __init__(self, path=KALLSYMS):
        self.path = path
        self._addrs = None
        self._names = None

    def _load(self):
        pairs = []
        try:
            with open(self.path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3 and parts[1] in "tT":
                        pairs.append((int(parts[0], 16), parts[2]))
        except (OSError, ValueError):
            pairs = []
        pairs = [p for p in pairs if p[0]]          # all 0 where kptr_restrict hides them
        pairs.sort()
        self._addrs = [a for a, _ in pairs]
        self._names = [n for _, n in pairs]

    def name(self, addr):
        """`cleanup_net`, `fn+0x10` inside one, or the address in hex when unknown."""
        if not addr:
            return ""
        if self._addrs is None:
            self._load()
        i = bisect.bisect_right(self._addrs, addr) - 1
        if i < 0:
            return hex(addr)
        off = addr - self._addrs[i]
        return self._names[i] if not off else f"{self._names[i]}+{off:#x}"


SYMBOLS = KernelSymbols()
