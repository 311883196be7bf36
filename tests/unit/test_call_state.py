"""Where the probes keep a thread's call in flight: task storage when the kernel
lets this layer's programs use it, else (or with the hidden --call-state hash)
the hash map by thread id."""
import pytest

from nlbpf.capture import layers
from nlbpf.capture.loader import Capture
from nlbpf.filters import Filters


@pytest.mark.parametrize("kernel_has, choice, flags, state", [
    (True, "auto", ["-DUSE_TASK_STORAGE"], "task storage"),
    (False, "auto", [], "hash map by thread id"),
    (True, "hash", [], "hash map by thread id"),
])
def test_call_state_follows_the_kernel_and_the_override(monkeypatch, defaults, kernel_has,
                                                        choice, flags, state):
    asked = []
    monkeypatch.setattr(layers, "have_task_storage", lambda layer: asked.append(layer) or kernel_has)
    defaults["call_state"] = choice
    capture = Capture(mode="errors", filters=Filters())
    assert capture._call_state("kprobe") == flags
    assert capture.call_state == state
    assert asked in ([], ["kprobe"])


def test_task_storage_probe_answers_per_layer_without_raising():
    layers.have_task_storage.cache_clear()
    for layer in ("syscall", "kprobe", "fentry"):
        assert layers.have_task_storage(layer) in (True, False)
