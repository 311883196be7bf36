"""Errno names as the kernel, iproute2 and strace spell them.

Python's ``errno.errorcode`` is platform dependent and, on Linux, says
ENOTSUP for 95 and EDEADLOCK for 35 where the kernel headers (and every
netlink tool) say EOPNOTSUPP and EDEADLK.  Netlink errnos are always Linux
numbers, whatever machine decodes a capture, so the table is spelled out here
from include/uapi/asm-generic/errno-base.h, errno.h and the kernel-internal
include/linux/errno.h (the latter do leak to user space through netlink,
ENOTSUPP 524 being the usual one).
"""
import os

_NAMES = (
    None, "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "ENXIO", "E2BIG",
    "ENOEXEC", "EBADF", "ECHILD", "EAGAIN", "ENOMEM", "EACCES", "EFAULT",
    "ENOTBLK", "EBUSY", "EEXIST", "EXDEV", "ENODEV", "ENOTDIR", "EISDIR",
    "EINVAL", "ENFILE", "EMFILE", "ENOTTY", "ETXTBSY", "EFBIG", "ENOSPC",
    "ESPIPE", "EROFS", "EMLINK", "EPIPE", "EDOM", "ERANGE",
    # 35..
    "EDEADLK", "ENAMETOOLONG", "ENOLCK", "ENOSYS", "ENOTEMPTY", "ELOOP",
    None,  # 41: EWOULDBLOCK is EAGAIN, 41 is unused
    "ENOMSG", "EIDRM", "ECHRNG", "EL2NSYNC", "EL3HLT", "EL3RST", "ELNRNG",
    "EUNATCH", "ENOCSI", "EL2HLT", "EBADE", "EBADR", "EXFULL", "ENOANO",
    "EBADRQC", "EBADSLT",
    None,  # 58: EDEADLOCK is EDEADLK, 58 is unused
    "EBFONT", "ENOSTR", "ENODATA", "ETIME", "ENOSR", "ENONET", "ENOPKG",
    "EREMOTE", "ENOLINK", "EADV", "ESRMNT", "ECOMM", "EPROTO", "EMULTIHOP",
    "EDOTDOT", "EBADMSG", "EOVERFLOW", "ENOTUNIQ", "EBADFD", "EREMCHG",
    "ELIBACC", "ELIBBAD", "ELIBSCN", "ELIBMAX", "ELIBEXEC", "EILSEQ",
    "ERESTART", "ESTRPIPE", "EUSERS", "ENOTSOCK", "EDESTADDRREQ", "EMSGSIZE",
    "EPROTOTYPE", "ENOPROTOOPT", "EPROTONOSUPPORT", "ESOCKTNOSUPPORT",
    "EOPNOTSUPP", "EPFNOSUPPORT", "EAFNOSUPPORT", "EADDRINUSE",
    "EADDRNOTAVAIL", "ENETDOWN", "ENETUNREACH", "ENETRESET", "ECONNABORTED",
    "ECONNRESET", "ENOBUFS", "EISCONN", "ENOTCONN", "ESHUTDOWN",
    "ETOOMANYREFS", "ETIMEDOUT", "ECONNREFUSED", "EHOSTDOWN", "EHOSTUNREACH",
    "EALREADY", "EINPROGRESS", "ESTALE", "EUCLEAN", "ENOTNAM", "ENAVAIL",
    "EISNAM", "EREMOTEIO", "EDQUOT", "ENOMEDIUM", "EMEDIUMTYPE", "ECANCELED",
    "ENOKEY", "EKEYEXPIRED", "EKEYREVOKED", "EKEYREJECTED", "EOWNERDEAD",
    "ENOTRECOVERABLE", "ERFKILL", "EHWPOISON",
)

ERRNO_NAMES = {n: name for n, name in enumerate(_NAMES) if name}

# include/linux/errno.h: "should never be seen by user programs", but some
# (ENOTSUPP above all) reach netlink replies.
_INTERNAL = {
    512: ("ERESTARTSYS", "Restart system call"),
    513: ("ERESTARTNOINTR", "Restart system call (no interrupt)"),
    514: ("ERESTARTNOHAND", "Restart if no handler"),
    515: ("ENOIOCTLCMD", "No ioctl command"),
    516: ("ERESTART_RESTARTBLOCK", "Restart by calling sys_restart_syscall"),
    517: ("EPROBE_DEFER", "Driver requests probe retry"),
    518: ("EOPENSTALE", "Open found a stale dentry"),
    519: ("ENOPARAM", "Parameter not supported"),
    521: ("EBADHANDLE", "Illegal NFS file handle"),
    522: ("ENOTSYNC", "Update synchronization mismatch"),
    523: ("EBADCOOKIE", "Cookie is stale"),
    524: ("ENOTSUPP", "Operation is not supported"),
    525: ("ETOOSMALL", "Buffer or request is too small"),
    526: ("ESERVERFAULT", "An untranslatable error occurred"),
    527: ("EBADTYPE", "Type not supported by server"),
    528: ("EJUKEBOX", "Request initiated, but will not complete before timeout"),
    529: ("EIOCBQUEUED", "iocb queued, will get completion event"),
    530: ("ERECALLCONFLICT", "Conflict with recalled state"),
    531: ("ENOGRACE", "NFS file lock reclaim refused"),
}
for _n, (_name, _text) in _INTERNAL.items():
    ERRNO_NAMES[_n] = _name
ERRNO_NUMBERS = {name: n for n, name in ERRNO_NAMES.items()}
ERRNO_NUMBERS["EWOULDBLOCK"] = 11
ERRNO_NUMBERS["EDEADLOCK"] = 35
ERRNO_NUMBERS["ENOTSUP"] = 95


def errno_name(n):
    """Kernel name of errno ``n`` (sign ignored): 95 -> "EOPNOTSUPP".

    0 gives None (success); an unknown number gives "E<n>"-free text
    "errno <n>" so it can never be mistaken for a real name.
    """
    try:
        n = abs(int(n))
    except (TypeError, ValueError):
        return None
    if n == 0:
        return None
    return ERRNO_NAMES.get(n, "errno %d" % n)


def strerror(n):
    """Human text for errno ``n`` (sign ignored), as iproute2 prints it."""
    try:
        n = abs(int(n))
    except (TypeError, ValueError):
        return None
    if n == 0:
        return "Success"
    if n in _INTERNAL:
        return _INTERNAL[n][1]
    try:
        return os.strerror(n)
    except (ValueError, OverflowError):
        return "Unknown error %d" % n
