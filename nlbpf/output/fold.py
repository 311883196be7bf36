"""errors' text output: a failure that repeats is said once, then counted.

iproute2 probes the kernel with a request it expects to fail (RTM_NEWLINK seq=0 →
ENODEV) on every `ip link` run; a CNI retrying a route delete fails the same way
each time. The first of a kind (same process name, protocol, request type and
error) is shown in full; the same again within the window is counted, and once
the window is over one line says how many came and from how many processes. The
next one after that is shown in full again. JSON lines show every record.
"""


FOLD_S = 1.0        # errors' default window (--fold), live or from a file


def outcome(rec):
    """What went wrong: the errno's name, or DUMP_INTR for an interrupted dump."""
    if rec.get("error"):
        return rec["error"]
    return "DUMP_INTR" if (rec.get("dump") or {}).get("intr") else None


def fold_key(rec):
    """What makes two failure records the same kind."""
    return (rec.get("comm"), rec.get("protocol"), rec.get("type"), rec.get("syscall")
            if rec.get("type") is None else None, outcome(rec), rec.get("extack"))


class RepeatFolder:
    def __init__(self, window_s):
        self.window_s = window_s
        self.windows = {}           # fold_key -> the window opened by the record shown

    def admit(self, rec):
        """(show this record?, fold lines due before it)."""
        if self.window_s <= 0:
            return True, []
        key = fold_key(rec)
        due = []
        w = self.windows.get(key)
        if w is not None:
            if rec["ts"] - w["since"] < self.window_s:
                w["count"] += 1
                w["pids"].add(rec["pid"])
                w["last"] = rec["ts"]
                return False, []
            due = self._close(key)
        self.windows[key] = {"since": rec["ts"], "last": rec["ts"], "count": 0, "pids": set(),
                             "first": rec}
        return True, due

    def due(self, now_s, everything=False):
        """Fold lines of the windows that are over by now_s (every one, at the end)."""
        out = []
        for key in [k for k, w in self.windows.items()
                    if everything or now_s - w["since"] >= self.window_s]:
            out += self._close(key)
        return out

    def _close(self, key):
        w = self.windows.pop(key)
        if not w["count"]:
            return []
        first = w["first"]
        what = first.get("type") or first.get("syscall") or "?"
        procs = len(w["pids"])
        return [{"ts": w["last"], "summary": (
            f"{first.get('comm')} {first.get('protocol')} {what} → {outcome(first)}: "
            f"{w['count']} more in the {self.window_s:g}s after it, from "
            f"{procs} process{'es' if procs != 1 else ''}")}]
