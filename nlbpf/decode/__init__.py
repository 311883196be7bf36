"""Payload decoding: one raw netlink message -> Decoded.

    from nlbpf.decode import decode, Decoded, GenlFamilies, errno_name, flag_names

    d = decode(protocol, data, families=None)

decode() never raises; see core.decode for the contract and Decoded for the
fields.  Payloads are decoded with pyroute2's message classes (tables.py
maps protocol/type to class); engine.py is the bounds-checking layer that
keeps garbage, truncated captures and pyroute2's own edge cases from
raising or looping.
"""
from .core import PROTOCOLS, Decoded, decode, flag_names
from .errnos import errno_name, strerror
from .genl import GenlFamilies

__all__ = ["decode", "Decoded", "GenlFamilies", "errno_name", "flag_names",
           "strerror", "PROTOCOLS"]
