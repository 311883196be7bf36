"""What the tests share: live-run helpers (live.py), the event layout (nlevent.py),
recorded netlink (nlfixtures.py), capture-file makers and checks (readcheck.py)."""
