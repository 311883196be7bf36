"""Capture files: pcap and pcapng (pcap.py), and nlbpf's records in them and back
out of them, nlmon captures too (recording.py)."""
