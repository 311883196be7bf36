"""Facts about the running kernel that take time to learn and hold until it reboots.

Starting a capture used to re-learn them every time: the struct offsets the
probes need (parsing all of vmlinux's BTF in Python, ~0.4 s) and, where the
kernel-function layer cannot load, why not (the fentry test compiles and loads
a program, ~0.35 s). Together that was a third of the time from start to
"Tracing netlink...".

They are kept in /run/nlbpf (tmpfs, root only), each under a key made of the
boot id and the kernel release, so a reboot or another kernel starts afresh.
Any problem reading or writing the cache only means it is not used.
`nlbpf doctor` always tests for real; removing /run/nlbpf forgets everything.
"""
import hashlib
import json
import os
import platform

CACHE_DIR = "/run/nlbpf"
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def _key():
    try:
        with open(BOOT_ID) as f:
            return f"{f.read().strip()} {platform.release()}"
    except OSError:
        return None


def name_for(prefix, spec):
    """A cache entry name that changes when `spec` (what is asked for) changes."""
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
    return f"{prefix}-{digest[:12]}"


def get(name):
    """The value stored under name during this boot, or None."""
    key = _key()
    if key is None:
        return None
    try:
        with open(os.path.join(CACHE_DIR, name + ".json")) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    return data.get("value")


def put(name, value):
    key = _key()
    if key is None:
        return
    try:
        os.makedirs(CACHE_DIR, mode=0o700, exist_ok=True)
        tmp = os.path.join(CACHE_DIR, f".{name}.{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump({"key": key, "value": value}, f)
        os.replace(tmp, os.path.join(CACHE_DIR, name + ".json"))
    except OSError:
        pass
