"""`nlbpf trace -- CMD`: run one command and watch it and what it forks, as strace -f does.

The command is started at once but held at a gate (a shell waiting on a pipe, which
then execs the command: the pid stays the same), so that the probes can load and
be told its pid before it makes its first request. Once they are attached, the gate
opens; the run ends when the command exits, and nlbpf exits with its status.

The command's stdout goes to nlbpf's stderr: nlbpf's own output (text, JSON lines, a
capture file on stdout) stays whole, and a terminal shows both.
"""
import os
import shutil
import signal
import subprocess
import sys

from ..errors import NlbpfError

# the gate: wait for the go-ahead on the pipe, close it, become the command
GATE = """
import os, sys
go = int(sys.argv[1])
if os.read(go, 1) != b"\\n":
    sys.exit(125)       # nlbpf went before its probes were attached: never run untraced
os.close(go)
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as e:
    print(f"nlbpf: cannot run {sys.argv[2]}: {e.strerror}", file=sys.stderr)
    sys.exit(126)
"""


class TracedCommand:
    """The command's process: held until release(), then run to its end."""

    def __init__(self, argv):
        if not argv:
            raise NlbpfError("no command given after --", exit_code=2)
        if shutil.which(argv[0]) is None:
            raise NlbpfError(f"no such command: {argv[0]}", exit_code=127)
        self.argv = list(argv)
        self.proc = None
        self._go = None

    def spawn(self):
        """Start the command, held at the gate; its pid (what the probes follow)."""
        r, w = os.pipe()
        try:
            self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", GATE, str(r),
                                          *self.argv],
                                         pass_fds=(r,), stdout=sys.stderr.fileno())
        except OSError as e:
            os.close(w)
            raise NlbpfError(f"cannot start {self.argv[0]}: {e.strerror or e}", exit_code=126
                             ) from None
        finally:
            os.close(r)
        self._go = w
        return self.proc.pid

    def release(self):
        """The probes are attached: let the command run."""
        if self._go is not None:
            try:
                os.write(self._go, b"\n")
            except OSError:
                pass            # it is gone already (killed while held): exited() says so
            os.close(self._go)
            self._go = None

    def exited(self):
        return self.proc is not None and self.proc.poll() is not None

    def exit_status(self):
        """The command's status as a shell gives it (128 + signal), or None if it runs."""
        if self.proc is None or self.proc.poll() is None:
            return None
        code = self.proc.returncode
        return 128 - code if code < 0 else code

    def abandon(self):
        """nlbpf could not start tracing: the held command never runs."""
        if self.proc is not None and self._go is not None:
            os.close(self._go)
            self._go = None
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
