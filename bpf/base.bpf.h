// SPDX-License-Identifier: GPL-2.0
/* nlbpf probes: netlink traffic with who sent it, seen from the kernel.
 * This header comes first in every hook layer's file: helper ids, netlink
 * constants, the limits every walk keeps to.
 *
 * Everything variable comes in as -D defines:
 *   MODE_TRACE | MODE_ERRORS | MODE_SLOW | MODE_TOP   what to hand over
 *   USE_RINGBUF, RINGBUF_PAGES                        ring buffer, else perf buffer
 *   SNAPLEN                                           bytes kept per message
 *   SELF_PID, FILTER_PID, FILTER_COMM, FILTER_PROTO, FILTER_TYPE, FILTER_NETNS, FILTER_CGROUP
 *   FILTER_CGROUP_TREE                                cgroup_filter map slot 0 set by the loader
 *   SLOW_NS, SPAN_MIN_NS                              slow mode thresholds
 *   OFF_*                                             struct offsets from the running kernel's BTF
 *   KERNEL_LAYER | SOCK_LAYER                         the layer (else the syscall layer)
 *
 * Struct fields are read at offsets from BTF, never through kernel headers,
 * which may belong to another kernel version.
 *
 * Each hook layer is one file (syscall.bpf.c, kernel.bpf.c, sock.bpf.c) that
 * includes these shared headers. bcc rewrites map calls only in the text it
 * compiles, so the loader (nlbpf/capture/source.py) joins a layer's file and
 * the *.bpf.h it includes into one text, with #line markers that keep
 * compiler errors pointing at the right file and line. */
#ifndef NLBPF_BASE_BPF_H
#define NLBPF_BASE_BPF_H

#include "nlbpf.h"
#if defined(KERNEL_LAYER) && !defined(USE_FENTRY)
#include <uapi/linux/ptrace.h>   /* struct pt_regs for the kprobe wrappers */
#endif

/* The user-memory read helper, called by its id. bcc (0.26) looks each call
 * of bpf_probe_read_user up in /proc/kallsyms while it compiles, and rebuilds
 * its whole table of kernel symbols for every call site because kallsyms has
 * duplicate names: ~40 ms a call, over a second of nlbpf's start-up. Every
 * kernel with the ring buffer or BTF has this helper (5.5+). */
static long (*read_user)(void *dst, __u32 size, const void *src) =
    (void *)BPF_FUNC_probe_read_user;

/* bpf_rdonly_cast (a kfunc, 6.2+): bcc cannot call kfuncs, so this is compiled as a
 * call to a marker helper id that the loader makes a kfunc call (btfprog.patch_kfuncs).
 * The verifier turns it into a register move, and a field read through what it
 * returns is a plain load, where bpf_probe_read_kernel costs a helper call (~30-40 ns
 * on a small VM). Only in programs the loader loads itself (btfprog.py). */
#define KFUNC_RDONLY_CAST 0x7ff0
static u64 (*rdonly_cast)(u64 obj, u32 btf_id) = (void *)KFUNC_RDONLY_CAST;
#ifndef FILE_ID                 /* no BTF ids given: the programs that cast are not loaded */
#define FILE_ID 0
#define SOCKET_ID 0
#endif

#define AF_NETLINK 16
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define MSG_PEEK 2
#define NLMSG_HDRLEN 16
#define NLMSG_ERROR 2
#define NLMSG_DONE 3
#define NLM_F_REQUEST 0x1
#define NLM_F_MULTI 0x2
#define NLM_F_ACK 0x4
#define NLM_F_DUMP 0x300
#define NLM_F_DUMP_INTR 0x10
#define EAGAIN 11
#define ENOBUFS 105
#define EINTR 4
#define E2BIG 7
#define LCB_F_MUTEX (1U << 5)

/* v = min(v, max), bounded again after an empty asm: clang may keep only one bound
 * on a copy it moves or spills, and the verifier (6.1's above all) then loses it */
#define CLAMP(v, max)                       \
    do {                                    \
        if ((v) > (max))                    \
            (v) = (max);                    \
        asm volatile("" : "+r"(v));         \
        if ((v) > (max))                    \
            (v) = (max);                    \
    } while (0)

#define MAX_IOV 1024            /* iovecs walked per msghdr: the kernel's most (UIO_MAXIOV) */
#define MAX_MMSG 1024           /* entries walked per sendmmsg/recvmmsg: the kernel's most */
/* steps per walk() run, re-entered by tail call; top's accounting makes each
 * step costlier to verify, so it takes smaller chunks */
#ifdef MODE_TOP
#define WALK_CHUNK 8
#else
#define WALK_CHUNK 48
#endif
#define MAX_TAIL 31             /* tail calls per syscall (kernel allows 33) */
/* modes that only count dump parts, so walk them header by header */
#if defined(MODE_TOP) || defined(MODE_ERRORS) || defined(MODE_SLOW)
#define HEADER_WALK
#endif

#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 4096
#endif
#ifndef SPAN_MIN_NS
#define SPAN_MIN_NS 1000000
#endif
#ifndef PENDING_MAX
#define PENDING_MAX 16384       /* requests the pending LRU holds */
#endif
#ifndef HOT_SLOTS
#define HOT_SLOTS 1024          /* slots of the hot pending table (a power of 2) */
#endif
#define HOT_WAYS 16             /* a socket's slots there: seqs modulo this */

#endif /* NLBPF_BASE_BPF_H */
