// SPDX-License-Identifier: GPL-2.0
/* nlbpf probes: netlink traffic with who sent it, seen from the kernel.
 *
 * Everything variable comes in as -D defines:
 *   MODE_TRACE | MODE_ERRORS | MODE_SLOW | MODE_TOP   what to hand over
 *   USE_RINGBUF, RINGBUF_PAGES                        ring buffer, else perf buffer
 *   SNAPLEN                                           bytes kept per message
 *   SELF_PID, FILTER_PID, FILTER_COMM, FILTER_PROTO, FILTER_TYPE, FILTER_NETNS, FILTER_CGROUP
 *   FILTER_CGROUP_TREE                                cgroup_filter map slot 0 set by the loader
 *   SLOW_NS, SPAN_MIN_NS                              slow mode thresholds
 *   OFF_*                                             struct offsets from the running kernel's BTF
 *
 * Struct fields are read at offsets from BTF, never through kernel headers,
 * which may belong to another kernel version.
 *
 * Three hook layers share this file (bcc rewrites map calls only in the file it
 * compiles, so they cannot live apart): the syscall layer (default) and the
 * kernel-function layer (-DKERNEL_LAYER) feed the same walker and the same
 * in-kernel pairing of requests with their final replies; the socket layer
 * (-DSOCK_LAYER: BTF tracepoints, loaded by btfprog.py) serves errors, top and
 * slow from the replies as they are queued.
 */
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
#define EINTR 4
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

/* ------------------------------------------------------------------ maps */

#ifdef USE_RINGBUF
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
/* Events written since this CPU last woke the reader: it is woken once every
 * WAKEUP_EVERY events, not for each (a wake-up costs the traced process an
 * IPI), and drains the buffer whenever its poll times out as well. */
#ifndef WAKEUP_EVERY
#define WAKEUP_EVERY 64
#endif
BPF_PERCPU_ARRAY(unsignalled, u32, 1);
#else
BPF_PERF_OUTPUT(events);
#endif

BPF_PERCPU_ARRAY(stats, u64, ST_NR);
/* The event being filled, with room past its data: a message gathered from many iovecs
 * (walk_split) is copied in at an offset and in pieces whose bounds the verifier knows
 * only from masks (AT_MASK, PIECE_MASK: each at least the largest snap length, so they
 * change nothing). Clamped, over a loop, they gave 6.1's verifier ranges with their
 * minimum past their maximum on paths it did not prune, and it refused the copy. */
#define AT_MASK 4095
#define PIECE_MASK 8191
#define SPILL (AT_MASK + PIECE_MASK + 1)
_Static_assert(AT_MASK + 1 >= SNAPLEN && PIECE_MASK >= SNAPLEN, "masks below the snap length");
struct scratch_event {
    struct nl_event ev;
    u8 spill[SPILL];
};
BPF_PERCPU_ARRAY(scratch, struct scratch_event, 1);
/* 0: walk, 1: walk_chunk (trace) or walk_hdrs (the others); syscall layer: 2: walk_split,
 * 3: sc_exit */
BPF_PROG_ARRAY(progs, 4);
#define PROG_WALK 0
#define PROG_SECOND 1
#define PROG_SPLIT 2
#define PROG_EXIT 3

/* Lock waits a thread met inside a netlink call (lock:contention_begin/end), and
 * the owner of the mutex it waited for longest. */
struct lock_track {
    u64 lock_wait;
    u64 lock_begin;             /* a wait going on: since when */
    u64 lock_addr;
    u64 lock_max;
    u32 holder_pid;
    u32 cur_holder_pid;         /* the owner of the lock waited for now */
    char holder_comm[16];
    char cur_holder_comm[16];
};

/* A netlink call in flight on one thread. */
struct call {
    u64 ts;
    u64 sk;
    u64 cgroup;
    u64 arg_ptr;                /* msghdr, buffer or mmsghdr vector (user) */
    u64 arg_len;                /* buffer length or vlen */
    u64 addr_ptr;               /* sendto's dest_addr, recvfrom's src_addr */
    u32 netns;
    u32 pid;
    u8 proto;
    u8 syscall;
    u8 dir;
    u8 live;                    /* task storage: the slot holds a call in flight */
    char comm[16];
    struct lock_track lk;       /* lock contention seen while this call ran */
    /* recv calls, syscall layer: the senders of the buffers taken (skb_copy_datagram_iovec) */
    u32 peer_portid;            /* the first buffer's sender's port: 0 is the kernel */
    u32 peer_pid;               /* ... its pid, when it is a process */
    u32 peer_group;             /* ... the multicast group it went to (0: unicast) */
    u32 copies;                 /* buffers taken so far (recvmmsg: one per datagram) */
    u32 addr_len;               /* sendto's addrlen (0: no address: the connected peer) */
    u32 pad2;
    u64 foreign;                /* recvmmsg: bit i, datagram i (1-63) came from a process;
                                   bit 0, one past the 63rd did */
};
#ifdef USE_TASK_STORAGE
/* The call in flight lives with its thread: a task-storage lookup costs a few ns
 * where a hash keyed by tid costs ~30 per update, lookup or delete (bench/). */
BPF_TASK_STORAGE(calls, struct call);
#else
BPF_HASH(calls, u32, struct call, 10240);   /* kernels without task storage here */
#endif

/* This thread's call in flight, or 0. */
static __always_inline struct call *call_get(void)
{
#ifdef USE_TASK_STORAGE
    struct call *c = calls.task_storage_get(bpf_get_current_task_btf(), 0, 0);
    return c && c->live ? c : 0;
#else
    u32 tid = (u32)bpf_get_current_pid_tgid();
    return calls.lookup(&tid);
#endif
}

/* Start this thread's call (replacing any left over). */
static __always_inline void call_put(struct call *c)
{
#ifdef USE_TASK_STORAGE
    struct call *slot = calls.task_storage_get(bpf_get_current_task_btf(), 0,
                                               BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (!slot)
        return;
    __builtin_memcpy(slot, c, sizeof(*slot));
    slot->live = 1;
#else
    u32 tid = (u32)bpf_get_current_pid_tgid();
    calls.update(&tid, c);
#endif
}

/* This thread's call is over. */
static __always_inline void call_end(struct call *c)
{
#ifdef USE_TASK_STORAGE
    c->live = 0;
#else
    u32 tid = (u32)bpf_get_current_pid_tgid();
    calls.delete(&tid);
#endif
}

/* Walk state of the syscall being processed on this CPU. */
struct walk_state {
    struct call c;
    u64 now;
    u64 remaining;              /* bytes left in this msghdr (recv: what the kernel wrote) */
    u64 iov_ptr;
    u64 iov_cnt;
    u64 iov_idx;
    u64 base;                   /* current segment */
    u64 seg_len;
    u64 off;
    u64 skip;                   /* bytes of a straddling message still to skip */
    u64 mmsg_ptr;
    u32 mmsg_idx;
    u32 mmsg_cnt;
    u32 groups;                 /* the current datagram's multicast group (0: unicast) */
    s32 ret;
    u32 tail;
    u32 peer_portid;            /* the other end of the current datagram (nl_event.peer_portid) */
    u32 peer_pid;
    u32 got;                    /* walk_split: bytes of the message gathered so far */
    u32 split_len;              /* ... its nlmsg_len, once its header is whole */
    u64 split_left;             /* ... bytes of the buffer from its start on */
    u8 lock_charged;            /* this recv's lock wait went to a request already */
    u8 is_mmsg;
    u8 flat;                    /* one buffer (sendto/recvfrom, skb data), no iovec array */
    u8 kmem;                    /* the buffer is kernel memory (an skb), not user memory */
    u8 eflags;                  /* EVF_* every message of this walk carries */
    u8 in_dump;                 /* the last full step was a dump part: headers from here */
    u8 split_hdr;               /* walk_split: the message's header is whole (split_len is it) */
    u8 pad[5];
};
BPF_PERCPU_ARRAY(walkst, struct walk_state, 1);

/* Requests waiting for their final reply, keyed by socket and seq. */
struct pend_key {
    u64 sk;
    u32 seq;
    u32 pad;
};
struct pend_val {
    struct pend_key key;        /* whose entry; in the hot table key.sk == 0 is a free slot */
    u64 ts;
    u64 parts;
    u64 bytes;
    u64 lock_wait;
    u64 lock_max;
    u64 handler_ns;
    u64 dump_ns;
    u32 holder_pid;
    u16 flags;
    u16 type;
    u8 intr;
    u8 pad[7];
    char holder_comm[16];
#ifdef KEEP_REQUEST
    u32 req_size;               /* bytes of req that are valid */
    u32 pad2;
    struct nl_event req;        /* the request event, handed over only if it matters */
#endif
};
/* Requests waiting for their final reply, in two levels. Storing one in the LRU
 * cost ~250 ns: every request takes a new element, and writing it (with the
 * held request, ~1.2 KB) misses the cache (bench/prog_time.sh). So a request
 * goes into a small array first, written in place: each socket owns HOT_WAYS
 * slots there, one per seq modulo HOT_WAYS, which a request-reply client
 * reuses while they are still in cache. A request that finds its slot taken by
 * one still waiting (another socket's, or a pipelined batch's) moves that one
 * to the LRU, where it is kept as before: one waiting seconds for a lock is
 * not lost to the traffic meanwhile. */
BPF_TABLE("lru_hash", struct pend_key, struct pend_val, pending, PENDING_MAX);
BPF_ARRAY(pend_hot, struct pend_val, HOT_SLOTS);

static __always_inline u32 pend_slot(u64 sk, u32 seq)
{
    u64 h = (sk >> 6) * 0x9E3779B97F4A7C15ULL;     /* socks are cache-line aligned */
    return ((u32)(h >> 40) * HOT_WAYS + (seq & (HOT_WAYS - 1))) & (HOT_SLOTS - 1);
}

BPF_PERCPU_ARRAY(pend_move, struct pend_val, 1);      /* an entry on its way back */

#ifdef MODE_TOP
BPF_HASH(top, u32, struct top_val, 10240);
BPF_HASH(top_types, struct top_type_key, u64, 65536);
BPF_PERCPU_ARRAY(top_zero, struct top_val, 1);
#endif

/* --------------------------------------------------------------- helpers */

static __always_inline void stat_add(u32 idx, u64 n)
{
    u64 *v = stats.lookup(&idx);
    if (v)
        *v += n;
}

static __always_inline void stat_inc(u32 idx)
{
    stat_add(idx, 1);
}

/* The hot slot for request (sk, seq), free for the caller to fill in; whoever
 * held it and still waits moves to the LRU. pend_publish() makes it findable. */
static __always_inline struct pend_val *pend_claim(u64 sk, u32 seq)
{
    u32 i = pend_slot(sk, seq);
    struct pend_val *p = pend_hot.lookup(&i);
    if (!p)
        return 0;
    if (p->key.sk && (p->key.sk != sk || p->key.seq != seq)) {
        struct pend_key k = p->key;
        if (pending.update(&k, p) != 0)
            stat_inc(ST_PENDING_FULL);
    }
    p->key.sk = 0;
    asm volatile("" ::: "memory");
    return p;
}

static __always_inline void pend_publish(struct pend_val *p, u64 sk, u32 seq)
{
    p->key.seq = seq;
    p->key.pad = 0;
    asm volatile("" ::: "memory");      /* sk last: who matches it finds the rest written */
    p->key.sk = sk;
}

/* The entry of request (sk, seq), or 0. Always a hot slot: one that waited in
 * the LRU comes back first (rare), so callers see one kind of pointer (the
 * verifier keeps the two apart, and walk's states multiplied past its limit). */
static __always_inline struct pend_val *pend_find(u64 sk, u32 seq)
{
    u32 i = pend_slot(sk, seq);
    struct pend_val *p = pend_hot.lookup(&i);
    if (!p)
        return 0;
    if (p->key.sk == sk && p->key.seq == seq)
        return p;
    struct pend_key k = {.sk = sk, .seq = seq};
    struct pend_val *old = pending.lookup(&k);
    if (!old)
        return 0;
    /* through per-CPU scratch: the claim below may move the slot's holder into
     * the LRU, and that update may evict `old` */
    u32 zero = 0;
    struct pend_val *tmp = pend_move.lookup(&zero);
    if (!tmp)
        return 0;
    bpf_probe_read_kernel(tmp, sizeof(*tmp), old);
    pending.delete(&k);
    p = pend_claim(sk, seq);
    if (!p)
        return 0;
    bpf_probe_read_kernel(p, sizeof(*p), tmp);
    pend_publish(p, sk, seq);
    return p;
}

/* The request is answered: its slot is free. */
static __always_inline void pend_drop(struct pend_val *p)
{
    p->key.sk = 0;
}

/* A call's lock waits count toward a pending request: added up, and the longest
 * kept with who held the lock (its comm means something only with its pid). */
static __always_inline void pend_add_locks(struct pend_val *p, const struct lock_track *lk)
{
    p->lock_wait += lk->lock_wait;
    if (lk->lock_max > p->lock_max) {
        p->lock_max = lk->lock_max;
        p->holder_pid = lk->holder_pid;
        __builtin_memcpy(p->holder_comm, lk->holder_comm, sizeof(p->holder_comm));
    }
}

static __always_inline u64 read_kptr(u64 addr)
{
    u64 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (void *)addr);
    return v;
}

#ifdef FILTER_COMM
static __always_inline int comm_matches(const char *comm)
{
    const char want[] = FILTER_COMM;
#pragma unroll
    for (int i = 0; i < 16 && i < sizeof(want); i++) {
        if (comm[i] != want[i])
            return 0;
        if (want[i] == 0)
            return 1;
    }
    return 1;
}
#endif

/* fd of `task` -> struct sock of a netlink socket, or 0. Fills proto and netns. */
static __always_inline u64 netlink_sock_of_task_fd(u64 task, int fd, u8 *proto, u32 *netns)
{
    if (fd < 0)
        return 0;
    u64 files = read_kptr(task + OFF_TASK_FILES);
    if (!files)
        return 0;
    u64 fdt = read_kptr(files + OFF_FILES_FDT);
    if (!fdt)
        return 0;
    u32 max_fds = 0;
    bpf_probe_read_kernel(&max_fds, sizeof(max_fds), (void *)(fdt + OFF_FDT_MAX_FDS));
    if ((u32)fd >= max_fds)
        return 0;
    u64 fd_array = read_kptr(fdt + OFF_FDT_FD);
    u64 file = read_kptr(fd_array + (u64)fd * 8);
    if (!file)
        return 0;
    u64 inode = read_kptr(file + OFF_FILE_INODE);
    u16 mode = 0;
    bpf_probe_read_kernel(&mode, sizeof(mode), (void *)(inode + OFF_INODE_MODE));
    if ((mode & S_IFMT) != S_IFSOCK)
        return 0;
    u64 socket = read_kptr(file + OFF_FILE_PRIVATE);
    u64 sk = read_kptr(socket + OFF_SOCKET_SK);
    if (!sk)
        return 0;
    u16 family = 0;
    bpf_probe_read_kernel(&family, sizeof(family), (void *)(sk + OFF_SOCK_FAMILY));
    if (family != AF_NETLINK)
        return 0;
    u16 protocol = 0;
    bpf_probe_read_kernel(&protocol, sizeof(protocol), (void *)(sk + OFF_SOCK_PROTOCOL));
    *proto = protocol;
    u64 net = read_kptr(sk + OFF_SOCK_NET);
    bpf_probe_read_kernel(netns, sizeof(*netns), (void *)(net + OFF_NET_INUM));
    return sk;
}

#ifndef KERNEL_LAYER
/* The same walk through BTF pointers (task: one, e.g. from bpf_get_current_task_btf):
 * plain loads, checked by the verifier against the running kernel's BTF, where the
 * walk above pays a helper call per field (12 of them: ~340 ns a call here, ~140 ns
 * this way). Only the fd table's slot takes a helper (the verifier does not index
 * it), and its two untyped pointers (the slot, private_data) are typed again with
 * bpf_rdonly_cast: 6.2+, in programs loaded by btfprog.py (the socket layer's; the
 * syscall layer's entry probes with -DFD_WALK_BTF). FILE_ID, SOCKET_ID: BTF ids of
 * struct file and struct socket. */
static __always_inline u64 netlink_sock_of_task_fd_btf(u64 task, int fd, u8 *proto, u32 *netns)
{
    if (fd < 0)
        return 0;
    u64 files = *(u64 *)(task + OFF_TASK_FILES);
    if (!files)
        return 0;
    u64 fdt = *(u64 *)(files + OFF_FILES_FDT);
    if (!fdt || (u32)fd >= *(u32 *)(fdt + OFF_FDT_MAX_FDS))
        return 0;
    u64 file = rdonly_cast(read_kptr(*(u64 *)(fdt + OFF_FDT_FD) + (u64)fd * 8), FILE_ID);
    if (!file)
        return 0;
    u64 inode = *(u64 *)(file + OFF_FILE_INODE);
    if (!inode || (*(u16 *)(inode + OFF_INODE_MODE) & S_IFMT) != S_IFSOCK)
        return 0;
    u64 socket = rdonly_cast(*(u64 *)(file + OFF_FILE_PRIVATE), SOCKET_ID);
    u64 sk = socket ? *(u64 *)(socket + OFF_SOCKET_SK) : 0;
    if (!sk || *(u16 *)(sk + OFF_SOCK_FAMILY) != AF_NETLINK)
        return 0;
    *proto = *(u16 *)(sk + OFF_SOCK_PROTOCOL);
    u64 net = *(u64 *)(sk + OFF_SOCK_NET);
    *netns = net ? *(u32 *)(net + OFF_NET_INUM) : 0;
    return sk;
}
#endif

/* fd of the current thread -> its netlink sock, or 0 (FD_WALK_BTF: through BTF pointers) */
static __always_inline u64 netlink_sock_of_fd(int fd, u8 *proto, u32 *netns)
{
#ifdef FD_WALK_BTF
    return netlink_sock_of_task_fd_btf((u64)bpf_get_current_task_btf(), fd, proto, netns);
#else
    return netlink_sock_of_task_fd((u64)bpf_get_current_task(), fd, proto, netns);
#endif
}

#ifdef FILTER_CGROUP_TREE
/* --cgroup / --container: slot 0 holds the cgroup v2 directory (set by the loader);
 * a task passes if it is in that cgroup or below it. */
BPF_CGROUP_ARRAY(cgroup_filter, 1);
#endif
#ifdef MODE_TOP
/* pid -> cgroup and netns of its latest netlink call, for top --by container|netns */
struct top_where {
    u64 cgroup;
    u32 netns;
    u32 pad;
};
BPF_HASH(top_ctx, u32, struct top_where, 10240);
#endif

/* Do the filters on the task (process, cgroup) keep what the current thread does? */
static __always_inline int task_wanted(u32 pid)
{
#ifdef SELF_PID
    if (pid == SELF_PID)        /* nlbpf's own lookups (genl families) are not news */
        return 0;
#endif
#ifdef FILTER_PID
    if (pid != FILTER_PID)
        return 0;
#endif
#ifdef FILTER_CGROUP
    if (bpf_get_current_cgroup_id() != FILTER_CGROUP)
        return 0;
#endif
#ifdef FILTER_CGROUP_TREE
    if (cgroup_filter.check_current_task(0) != 1)
        return 0;               /* not below it, or the slot is empty (error < 0) */
#endif
    return 1;
}

/* Fill who/where for a call on netlink socket sk; 0 if the filters drop it. */
static __always_inline int fill_call(struct call *c, u64 sk, u8 proto, u32 netns)
{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (!task_wanted(pid))
        return 0;
#ifdef FILTER_PROTO
    if (proto != FILTER_PROTO)
        return 0;
#endif
#ifdef FILTER_NETNS
    if (netns != FILTER_NETNS)
        return 0;
#endif
    bpf_get_current_comm(&c->comm, sizeof(c->comm));
#ifdef FILTER_COMM
    if (!comm_matches(c->comm))
        return 0;
#endif
    c->sk = sk;
    c->proto = proto;
    c->netns = netns;
    c->ts = bpf_ktime_get_ns();
    c->pid = pid;
    c->cgroup = bpf_get_current_cgroup_id();
#ifdef MODE_TOP
    /* written only when it changes: a lookup is cheaper than an update per call */
    struct top_where *was = top_ctx.lookup(&pid);
    if (!was || was->cgroup != c->cgroup || was->netns != netns) {
        struct top_where where = {.cgroup = c->cgroup, .netns = netns};
        top_ctx.update(&pid, &where);
    }
#endif
    return 1;
}

/* Common syscall entry: is this a netlink call we want? Remember it if so. */
static __always_inline int enter_call(int fd, u8 syscall, u8 dir, u64 arg_ptr, u64 arg_len,
                                      u64 addr_ptr, u32 addr_len)
{
#ifdef FILTER_PID
    if ((bpf_get_current_pid_tgid() >> 32) != FILTER_PID)
        return 0;               /* cheap early exit before the fd lookup */
#endif
    struct call c = {};
    u8 proto = 0;
    u32 netns = 0;
    u64 sk = netlink_sock_of_fd(fd, &proto, &netns);
    if (!sk || !fill_call(&c, sk, proto, netns))
        return 0;
    c.syscall = syscall;
    c.dir = dir;
    c.arg_ptr = arg_ptr;
    c.arg_len = arg_len;
    c.addr_ptr = addr_ptr;
    c.addr_len = addr_len;
    call_put(&c);
    return 0;
}

static __always_inline void fill_common(struct nl_event *e, struct walk_state *w, u8 kind)
{
    e->kind = kind;
    e->ts_ns = w->c.ts;
    e->dur_ns = w->now - w->c.ts;
    e->sk = w->c.sk;
    e->cgroup = w->c.cgroup;
    e->pid = w->c.pid;
    e->tid = (u32)bpf_get_current_pid_tgid();
    e->netns = w->c.netns;
    e->groups = w->groups;
    e->ret = w->ret;
    e->proto = w->c.proto;
    e->syscall = w->c.syscall;
    e->dir = w->c.dir;
    e->lock_wait_ns = 0;
    e->holder_pid = 0;
    e->skipped_parts = 0;
    e->skipped_bytes = 0;
    e->handler_ns = 0;
    e->dump_ns = 0;
    e->start_slack_ns = 0;
    e->flags = 0;
    e->peer_portid = w->peer_portid;
    e->peer_pid = w->peer_pid;
    __builtin_memcpy(e->comm, w->c.comm, sizeof(e->comm));
    u32 portid = 0;
    bpf_probe_read_kernel(&portid, sizeof(portid), (void *)(w->c.sk + OFF_NLSK_PORTID));
    e->portid = portid;
}

/* Hand over `size` bytes (bounded by the caller); `msgs` netlink messages in them.
 * p is typed: bcc derives the Python event layout from what events.* is given. */
static __always_inline void submit(void *ctx, struct nl_event *p, u64 size, u32 msgs)
{
#ifdef USE_RINGBUF
    u64 flags = BPF_RB_NO_WAKEUP;
    u32 zero = 0;
    u32 *quiet = unsignalled.lookup(&zero);
    if (quiet && ++*quiet >= WAKEUP_EVERY) {
        *quiet = 0;
        flags = BPF_RB_FORCE_WAKEUP;
    }
    int err = events.ringbuf_output(p, size, flags);
#else
    int err = events.perf_submit(ctx, p, size);
#endif
    stat_add(err ? ST_LOST : ST_EMITTED, msgs);
}

static __always_inline void emit(void *ctx, struct nl_event *e, u64 size)
{
    CLAMP(size, sizeof(struct nl_event));
    if (size < NL_EVENT_HDR)
        size = NL_EVENT_HDR;
    submit(ctx, e, size, 1);
}

static __always_inline void emit_event(void *ctx, struct nl_event *e)
{
    emit(ctx, e, NL_EVENT_HDR + e->cap_len);
}

/* log2 bucket with one extra bit of precision, for the top histogram */
static __always_inline u32 lat_bucket(u64 v)
{
    u32 lg = 0;
    u64 x = v;
    if (x >> 32) { x >>= 32; lg += 32; }
    if (x >> 16) { x >>= 16; lg += 16; }
    if (x >> 8) { x >>= 8; lg += 8; }
    if (x >> 4) { x >>= 4; lg += 4; }
    if (x >> 2) { x >>= 2; lg += 2; }
    if (x >> 1) { lg += 1; }
    u32 half = lg ? (u32)((v >> (lg - 1)) & 1) : 0;
    u32 b = lg * 2 + half;
    return b < LAT_BUCKETS ? b : LAT_BUCKETS - 1;
}

#ifdef MODE_TOP
static __always_inline struct top_val *top_entry(struct walk_state *w)
{
    u32 pid = w->c.pid;
    struct top_val *t = top.lookup(&pid);
    if (t)
        return t;
    u32 zero = 0;
    struct top_val *z = top_zero.lookup(&zero);
    if (!z)
        return 0;
    __builtin_memcpy(z->comm, w->c.comm, sizeof(z->comm));
    top.insert(&pid, z);
    return top.lookup(&pid);
}

static __always_inline void top_count_type(struct walk_state *w, u16 type)
{
    struct top_type_key k = {.pid = w->c.pid, .type = type, .proto = w->c.proto};
    u64 one = 1;
    u64 *n = top_types.lookup(&k);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        top_types.insert(&k, &one);
}
#endif

/* ------------------------------------------------------ per-message logic */

/* top hands no message over: of each it reads the header and the NLMSG_ERROR
 * status only. (Reading replies lazily in errors/slow too saved ~4 ns a call
 * and doubled the verifier's time on walk, i.e. +0.2 s to attach: not done.) */
#define STATUS_END (SNAPLEN < 20 ? SNAPLEN : 20)      /* a constant: no branch for the verifier */
/* extack texts are short (the kernel's are string literals); a small --snaplen cuts them */
#define EXTACK_MAX (SNAPLEN < 256 ? SNAPLEN : 256)


static __always_inline void on_request(void *ctx, struct walk_state *w, struct nl_event *e,
                                       struct top_val *t)
{
#ifdef FILTER_TYPE
    if (e->nl_type != FILTER_TYPE)
        return;
#endif
    /* Only requests to the kernel get replies worth waiting for: not a message to another
     * process's port (whatever its flags say), nor one the kernel ignored. */
    int to_kernel = (e->nl_flags & NLM_F_REQUEST) && !w->peer_portid
        && !(e->flags & EVF_OVERLONG);
#ifdef MODE_TOP
    if (t) {
        __sync_fetch_and_add(&t->msgs_out, 1);
        __sync_fetch_and_add(&t->bytes_out, e->nl_len);
        if (to_kernel)
            __sync_fetch_and_add(&t->requests, 1);
        if (to_kernel && (e->nl_flags & NLM_F_DUMP) == NLM_F_DUMP)
            __sync_fetch_and_add(&t->dumps, 1);
    }
    if (to_kernel)
        top_count_type(w, e->nl_type);
#endif
    if (to_kernel) {
        struct pend_val *v = pend_claim(w->c.sk, e->nl_seq);
        if (v) {
            v->ts = w->c.ts;
            v->flags = e->nl_flags;
            v->type = e->nl_type;
            v->parts = 0;
            v->bytes = 0;
            v->intr = 0;
            v->lock_wait = 0;
            v->lock_max = 0;
            v->handler_ns = 0;
            v->dump_ns = 0;
            v->holder_pid = 0;
            /* the send call's own lock wait counts toward its (first) request */
            if (!w->lock_charged) {
                pend_add_locks(v, &w->c.lk);
                w->lock_charged = 1;
            }
#ifdef KEEP_REQUEST
            u64 sz = NL_EVENT_HDR + e->cap_len;
            CLAMP(sz, sizeof(struct nl_event));
            bpf_probe_read_kernel(&v->req, sz, e);
            v->req_size = sz;
            v->req.flags |= EVF_HELD;
#endif
            pend_publish(v, w->c.sk, e->nl_seq);
        }
    }
#ifdef MODE_TRACE
    emit_event(ctx, e);
#endif
}

static __always_inline void on_reply(void *ctx, struct walk_state *w, struct nl_event *e,
                                     struct top_val *t)
{
    if (w->groups || w->peer_portid) {
        /* a multicast notification, or a message from a process (a port other than the
         * kernel's 0): only trace shows them, and no request is answered by one (another
         * process can send anything to a socket's port: a forged reply is not the kernel's) */
#ifdef MODE_TOP
        if (t) {
            __sync_fetch_and_add(&t->msgs_in, 1);
            __sync_fetch_and_add(&t->bytes_in, e->nl_len);
        }
#endif
#if defined(MODE_TRACE)
#ifdef FILTER_TYPE
        if (e->nl_type != FILTER_TYPE)
            return;
#endif
        emit_event(ctx, e);
#endif
        return;
    }

    struct pend_val *p = pend_find(w->c.sk, e->nl_seq);
#ifdef MODE_TOP
    if (t) {
        __sync_fetch_and_add(&t->msgs_in, 1);
        __sync_fetch_and_add(&t->bytes_in, e->nl_len);
    }
#endif
    if (!p) {
        /* a reply to a request we did not see (or filtered out) */
#if defined(MODE_TRACE) && !defined(FILTER_TYPE)
        emit_event(ctx, e);
#endif
        return;
    }
    /* this recv call's lock wait counts toward the request once */
    if (!w->lock_charged) {
        pend_add_locks(p, &w->c.lk);
        w->lock_charged = 1;
    }

    int final = e->nl_type == NLMSG_ERROR || e->nl_type == NLMSG_DONE ||
                (!(e->nl_flags & NLM_F_MULTI) && !(p->flags & NLM_F_ACK));
    if (!final) {
        p->parts++;
        p->bytes += e->nl_len;
        if (e->nl_flags & NLM_F_DUMP_INTR)
            p->intr = 1;
        w->in_dump = 1;
#ifdef MODE_TRACE
        emit_event(ctx, e);
#endif
        return;
    }

    /* the final reply: the request is answered */
    s32 status = 0;
    if ((e->nl_type == NLMSG_ERROR || e->nl_type == NLMSG_DONE) && e->cap_len >= 20)
        bpf_probe_read_kernel(&status, sizeof(status), &e->data[16]);
    u64 latency = w->now - p->ts;
    u8 intr = p->intr || (e->nl_flags & NLM_F_DUMP_INTR);

    e->flags |= EVF_FINAL;
    e->handler_ns = p->handler_ns;
    e->dump_ns = p->dump_ns;
    e->lock_wait_ns = p->lock_wait;
    e->holder_pid = p->holder_pid;
    __builtin_memcpy(e->holder_comm, p->holder_comm, sizeof(e->holder_comm));

#ifdef MODE_TOP
    if (t) {
        if (status)
            __sync_fetch_and_add(&t->errors, 1);
        if (intr)
            __sync_fetch_and_add(&t->dump_intr, 1);
        __sync_fetch_and_add(&t->lat_count, 1);
        __sync_fetch_and_add(&t->lat_sum_ns, latency);
        __sync_fetch_and_add(&t->lock_wait_ns, p->lock_wait);
        if (latency > t->lat_max_ns)
            t->lat_max_ns = latency;
        u32 b = lat_bucket(latency);
        if (b < LAT_BUCKETS)
            __sync_fetch_and_add(&t->lat_hist[b], 1);
    }
#endif

#if defined(MODE_ERRORS) || defined(MODE_SLOW)
#ifdef MODE_ERRORS
    int wanted = status != 0 || intr;
#else
    int wanted = latency >= SLOW_NS;
#endif
    if (wanted) {
        e->skipped_parts = p->parts;
        e->skipped_bytes = p->bytes;
        if (p->intr)
            e->flags |= EVF_SKIPPED_INTR;
#ifdef KEEP_REQUEST
        if (p->req_size)
            emit(ctx, &p->req, p->req_size);
#endif
        emit_event(ctx, e);
    }
#endif
#ifdef MODE_TRACE
    emit_event(ctx, e);
#endif
    pend_drop(p);
}

/* ------------------------------------------------------------- the walk */

static __always_inline long read_buf(struct walk_state *w, void *dst, u64 n, u64 src)
{
    if (w->kmem)
        return bpf_probe_read_kernel(dst, n, (void *)src);
    return read_user(dst, n, (void *)src);
}

/* A sockaddr_nl's group mask -> the lowest group number in it (0: none). */
static __always_inline u32 group_of_mask(u32 mask)
{
    if (!mask)
        return 0;
    u32 g = 1;
    if (!(mask & 0xffff)) { mask >>= 16; g += 16; }
    if (!(mask & 0xff)) { mask >>= 8; g += 8; }
    if (!(mask & 0xf)) { mask >>= 4; g += 4; }
    if (!(mask & 0x3)) { mask >>= 2; g += 2; }
    if (!(mask & 0x1)) { g += 1; }
    return g;
}

/* Who is at the other end of the datagram the walk is at (entry: its index in an mmsghdr
 * vector, else 0; name, namelen: its msghdr's address). A received one: its sender, as the
 * kernel knows it (the skb's NETLINK_CB, seen as the buffer was copied out: the first
 * datagram of a call) or as the kernel wrote it into msg_name. A sent one: its
 * destination, from its address or else the socket's connected peer. Port 0 is the kernel:
 * no user socket can have it. */
static __always_inline void walk_peer(struct walk_state *w, u64 name, u32 namelen, u32 entry)
{
    u32 addr[3] = {};           /* sockaddr_nl: family and pad, nl_pid, nl_groups */
    int named = name && namelen >= sizeof(addr) && !read_user(addr, sizeof(addr), (void *)name);
    w->peer_portid = 0;
    w->peer_pid = 0;
    w->groups = 0;
    if (w->c.dir == DIR_RECV) {
        if (entry == 0 && w->c.copies) {
            w->peer_portid = w->c.peer_portid;
            w->peer_pid = w->c.peer_pid;
            w->groups = w->c.peer_group;
        } else if (named) {
            w->peer_portid = addr[1];
            w->groups = group_of_mask(addr[2]);
        } else if (entry && (w->c.foreign & (1ULL << (entry < 64 ? entry : 0)))) {
            w->peer_portid = PEER_UNKNOWN;
        }
    } else if (named) {
        w->peer_portid = addr[1];
    } else {
        bpf_probe_read_kernel(&w->peer_portid, sizeof(u32),
                              (void *)(w->c.sk + OFF_NLSK_DST_PORTID));
    }
}

/* Move to the next iovec of the current msghdr. 0 when there is none. */
static __always_inline int next_iov(struct walk_state *w)
{
    if (w->flat || !w->remaining || w->iov_idx >= w->iov_cnt)
        return 0;
    if (w->iov_idx >= MAX_IOV)
        return 0;       /* never: the kernel fails a call with more iovecs (EMSGSIZE) */
    u64 iov[2] = {};
    read_user(iov, sizeof(iov), (void *)(w->iov_ptr + w->iov_idx * 16));
    w->iov_idx++;
    w->base = iov[0];
    w->seg_len = iov[1] < w->remaining ? iov[1] : w->remaining;
    w->remaining -= w->seg_len;
    w->off = 0;
    return 1;
}

/* Move to the next iovec, or to the next datagram of an mmsghdr vector. 0 when there is
 * none. */
static __always_inline int next_segment(struct walk_state *w)
{
    if (next_iov(w))
        return 1;
    if (!w->is_mmsg || w->mmsg_idx + 1 >= w->mmsg_cnt || w->mmsg_idx + 1 >= MAX_MMSG)
        return 0;       /* (never MAX_MMSG: the kernel does at most that many per call) */
    /* struct mmsghdr { struct user_msghdr (56 bytes); u32 msg_len; } is 64 bytes */
    w->mmsg_idx++;
    u64 m = w->mmsg_ptr + (u64)w->mmsg_idx * 64;
    u64 hdr[4] = {};            /* msg_name, msg_namelen, msg_iov, msg_iovlen */
    u32 len = 0;
    read_user(hdr, sizeof(hdr), (void *)m);
    read_user(&len, sizeof(len), (void *)(m + 56));
    w->iov_ptr = hdr[2];
    w->iov_cnt = hdr[3];
    w->iov_idx = 0;
    w->remaining = len;
    w->seg_len = 0;
    w->off = 0;
    /* a new datagram: what the last one's overlong message claimed ends with it */
    w->skip = 0;
    walk_peer(w, hdr[0], (u32)hdr[1], w->mmsg_idx);
    return 1;
}

/* walk_step's answers: stop, go on, or hand the message at the walk's position to
 * walk_split (what is kept of it goes on in the next iovec) */
#define STEP_STOP 0
#define STEP_ON 1
#define STEP_SPLIT 2

/* Bytes of a message that matter to the mode: top reads a header and an error's status. */
#ifdef MODE_TOP
#define GATHER_MAX STATUS_END
#else
#define GATHER_MAX SNAPLEN
#endif

/* The kernel stops reading a buffer at a tail shorter than a header, or at a header whose
 * nlmsg_len is below one (netlink_rcv_skb): so does the walk. A zero length there is
 * padding (iproute2 sends dump requests in a zeroed 1 KB buffer), not a message; other
 * bytes are shown as they are (trace). first: the tail's first 4 bytes. */
static __always_inline void buffer_end(void *ctx, struct walk_state *w, struct nl_event *e,
                                       u32 first)
{
#ifdef MODE_TRACE
    if (first)
        emit_event(ctx, e);
#endif
    w->off = w->seg_len;
    w->remaining = 0;
}

/* What every message event starts from: the walk's flags and the datagram's other end. */
static __always_inline void message_event(struct walk_state *w, struct nl_event *e, u32 *hdr)
{
    e->nl_len = hdr[0];
    e->nl_type = hdr[1] & 0xffff;
    e->nl_flags = hdr[1] >> 16;
    e->nl_seq = hdr[2];
    e->flags = w->eflags;
    e->groups = w->groups;
    e->peer_portid = w->peer_portid;
    e->peer_pid = w->peer_pid;
    e->skipped_parts = 0;
    e->skipped_bytes = 0;
    e->lock_wait_ns = 0;
    e->handler_ns = 0;
    e->dump_ns = 0;
    e->holder_pid = 0;
}

static __always_inline void dispatch(void *ctx, struct walk_state *w, struct nl_event *e,
                                     struct top_val *t)
{
    if (w->c.dir == DIR_SEND)
        on_request(ctx, w, e, t);
    else
        on_reply(ctx, w, e, t);
}

/* One step: skip, advance a segment, or handle the message at base+off. */
static __always_inline int walk_step(void *ctx, struct walk_state *w, struct nl_event *e,
                                     struct top_val *t)
{
    if (w->off >= w->seg_len)
        return next_segment(w);
    u64 avail = w->seg_len - w->off;
    if (w->skip) {
        u64 n = w->skip < avail ? w->skip : avail;
        w->off += n;
        w->skip -= n;
        return STEP_ON;
    }
    u64 src = w->base + w->off;
    /* bytes of the buffer from here on: this iovec's and those to come (the kernel joins
     * a msghdr's iovecs into one buffer) */
    u64 left = avail + w->remaining;
    u32 hdr[4] = {};
    if (avail < NLMSG_HDRLEN && left >= NLMSG_HDRLEN) {
        __builtin_memset(e->data, 0, NLMSG_HDRLEN);     /* walk_split gathers the header */
        w->got = 0;
        w->split_len = 0;
        w->split_hdr = 0;
        w->split_left = left;
        return STEP_SPLIT;
    }
    u64 n = avail < NLMSG_HDRLEN ? avail : NLMSG_HDRLEN;
    CLAMP(n, NLMSG_HDRLEN);
    read_buf(w, hdr, n, src);
    message_event(w, e, hdr);
    u64 msg_len = hdr[0];
    if (avail < NLMSG_HDRLEN || msg_len < NLMSG_HDRLEN) {
        /* the end of the buffer for the kernel */
        u64 cap = avail;
        CLAMP(cap, GATHER_MAX);
        read_buf(w, e->data, cap, src);
        e->cap_len = cap;
        buffer_end(ctx, w, e, hdr[0]);
        return STEP_ON;
    }
    u64 need = msg_len < GATHER_MAX ? msg_len : GATHER_MAX;
    if (avail < need && msg_len <= left) {
        __builtin_memset(e->data, 0, NLMSG_HDRLEN);
        w->got = 0;
        w->split_len = 0;
        w->split_hdr = 0;
        w->split_left = left;
        return STEP_SPLIT;
    }
    if (msg_len > left)
        e->flags |= EVF_OVERLONG;
    /* keep the message (or what there is of it), cut at SNAPLEN */
    u64 cap = msg_len < avail ? msg_len : avail;
    CLAMP(cap, SNAPLEN);
#ifdef MODE_TOP
    /* top only counts: header and status, a constant read (what a short message
     * leaves past its end in data[] is never looked at: cap_len says so) */
    read_buf(w, e->data, STATUS_END, src);
#else
    read_buf(w, e->data, cap, src);
#endif
    e->cap_len = cap;
    dispatch(ctx, w, e, t);
    if (msg_len > left) {
        /* it claims more than the buffer holds: a send the kernel stopped at (it reads no
         * further), or a reply the reader's buffer cut */
        w->off = w->seg_len;
        w->remaining = 0;
        return STEP_ON;
    }
    u64 step = (msg_len + 3) & ~3ULL;
    if (step > avail) {
        w->skip = step - avail;
        w->off = w->seg_len;
    } else {
        w->off += step;
    }
    return STEP_ON;
}


/* headers walked after the full messages: a 32 KB dump chunk of small routes is
 * ~630 messages; trace emits an event per header, which costs the verifier more */
#ifdef MODE_TRACE
#define WALK_HDRS 256
#else
#define WALK_HDRS 1024
#endif
/* which memory is fixed per layer: no branch per header for the verifier */
#ifdef KERNEL_LAYER
#define read_walked(dst, n, src) bpf_probe_read_kernel(dst, n, (void *)(src))   /* the skb */
#else
#define read_walked(dst, n, src) read_user(dst, n, (void *)(src))     /* the iovecs */
#endif

/* Dump parts walked header by header count into their request's entry (its
 * final reply reports them); returns the entry, or 0 for a request not seen. */
static __always_inline struct pend_val *count_parts(struct walk_state *w, u32 seq, u64 parts,
                                                    u64 bytes, u8 intr)
{
    struct pend_val *p = pend_find(w->c.sk, seq);
    if (p) {
        p->parts += parts;
        p->bytes += bytes;
        if (intr)
            p->intr = 1;
    }
    return p;
}

/* Headers-only pass over what the full walk left of the current buffer
 * segment: every message still counts (dump parts, trace lines with the
 * header), without the payload. Counters stay in registers and reach the
 * maps once: the verifier walks this loop WALK_HDRS times. count_cut: the
 * caller cannot come back for the rest, so stopping at the cap is counted. */
static __always_inline void walk_headers(void *ctx, struct walk_state *w, struct nl_event *e,
                                         int count_cut)
{
    u64 parts = 0, bytes = 0;
    u8 intr = 0;
    int final = 0, i = 0;
    int recv = w->c.dir == DIR_RECV && !w->groups && !w->peer_portid;
    /* replies in one skb answer one request: its seq, read once */
    u32 seq0 = 0;
    read_walked(&seq0, sizeof(seq0), w->base + w->off + 8);
    /* few branches per iteration: 6.1's verifier gives up past 8192 pending ones */
#pragma clang loop unroll(disable)
    for (i = 0; i < WALK_HDRS; i++) {
        if (w->off + NLMSG_HDRLEN > w->seg_len)
            break;
        u32 hdr[4] = {};
        read_walked(hdr, sizeof(hdr), w->base + w->off);
        u64 len = hdr[0];
        if (len < NLMSG_HDRLEN)
            break;
        u16 type = hdr[1] & 0xffff;
        if (recv && (type <= NLMSG_DONE || hdr[2] != seq0)) {
            final = type == NLMSG_DONE || type == NLMSG_ERROR;
            break;              /* the final reply (handled in full below), or another request's */
        }
        parts++;
        bytes += len;
        intr |= (hdr[1] >> 16) & NLM_F_DUMP_INTR;
#ifdef MODE_TRACE
        e->nl_len = len;
        e->nl_type = type;
        e->nl_flags = hdr[1] >> 16;
        e->nl_seq = hdr[2];
        e->flags = w->eflags;
        e->groups = w->groups;
        e->peer_portid = w->peer_portid;
        e->peer_pid = w->peer_pid;
        __builtin_memcpy(e->data, hdr, sizeof(hdr));
        e->cap_len = NLMSG_HDRLEN;
        emit(ctx, e, NL_EVENT_HDR + NLMSG_HDRLEN);
#endif
        w->off += (len + 3) & ~3ULL;
    }
    if (w->off > w->seg_len) {
        /* the last one counted goes on in the next iovec: skip the rest of it there */
        w->skip = w->off - w->seg_len;
        w->off = w->seg_len;
    }
    if (count_cut && i == WALK_HDRS && w->off + NLMSG_HDRLEN <= w->seg_len)
        stat_inc(ST_TRUNC_WALK);        /* more messages than the probe walks */
#ifdef MODE_TOP
    /* looked up again: the verifier loses the null check of `t` across the loop */
    u32 pid = w->c.pid;
    struct top_val *tt = top.lookup(&pid);
    if (tt) {
        if (w->c.dir == DIR_SEND) {
            __sync_fetch_and_add(&tt->msgs_out, parts);
            __sync_fetch_and_add(&tt->bytes_out, bytes);
        } else {
            __sync_fetch_and_add(&tt->msgs_in, parts);
            __sync_fetch_and_add(&tt->bytes_in, bytes);
        }
    }
#endif
    if (recv && parts) {
        count_parts(w, seq0, parts, bytes, intr);
    } else if (!recv && parts && w->c.dir == DIR_SEND) {
        stat_inc(ST_TRUNC_WALK);        /* requests past KWALK_FULL are not paired */
    }
    if (final) {
        struct top_val *t = 0;
#ifdef MODE_TOP
        t = tt;         /* not carried across the loop: it would multiply verifier states */
#endif
        walk_step(ctx, w, e, t);
    }
}


#ifdef MODE_TRACE
/* Dump parts travel in bulk: one EV_CHUNK per run of them, copied whole, instead
 * of an event each (a 32 KB recv holds hundreds). A part qualifies when it is a
 * whole NLM_F_MULTI data message inside the segment; the final NLMSG_DONE, and
 * anything else, takes the full path. Both layers: walk_chunk() (a tail-called
 * program) on the syscall layer, kwalk() on the kernel layer. */
#define CHUNK_HDRS 512
struct chunk_event {
    u8 head[__builtin_offsetof(struct nl_event, data)];
    u8 data[CHUNK_MAX];
};
BPF_PERCPU_ARRAY(chunk_buf, struct chunk_event, 1);

static __always_inline int is_part(struct walk_state *w, u32 *hdr, u64 start)
{
    u64 len = hdr[0];
    return len >= NLMSG_HDRLEN && (hdr[1] & 0xffff) > NLMSG_DONE
        && ((hdr[1] >> 16) & NLM_F_MULTI) && w->off + len <= w->seg_len
        && w->off + len - start <= CHUNK_MAX;
}

/* Does the walk stand at a dump part a chunk can take? */
static __always_inline int chunk_ready(struct walk_state *w)
{
    if (w->c.dir != DIR_RECV || w->groups || w->peer_portid || w->skip)
        return 0;
    if (w->off >= w->seg_len && !next_segment(w))
        return 0;
    if (w->off + NLMSG_HDRLEN > w->seg_len)
        return 0;
    u32 hdr[4] = {};
    read_walked(hdr, sizeof(hdr), w->base + w->off);
    return is_part(w, hdr, w->off);
}

/* Hand over the run of parts the walk stands at (chunk_ready() said there is one)
 * as one EV_CHUNK, and move the walk past it. */
static __always_inline void emit_chunk(void *ctx, struct walk_state *w, struct nl_event *e,
                                       struct chunk_event *ch)
{
    u64 start = w->off;
    u32 seq0 = 0;
    read_walked(&seq0, sizeof(seq0), w->base + start + 8);
    u64 parts = 0, bytes = 0;
    u8 intr = 0;
#pragma clang loop unroll(disable)
    for (int i = 0; i < CHUNK_HDRS; i++) {
        if (w->off + NLMSG_HDRLEN > w->seg_len)
            break;
        u32 hdr[4] = {};
        read_walked(hdr, sizeof(hdr), w->base + w->off);
        if (!is_part(w, hdr, start) || hdr[2] != seq0)
            break;
        parts++;
        bytes += hdr[0];
        intr |= (hdr[1] >> 16) & NLM_F_DUMP_INTR;
        w->off += (hdr[0] + 3) & ~3ULL;
    }
    u64 end = w->off < w->seg_len ? w->off : w->seg_len;
    u64 n = end - start;
    if (!parts)
        return;
    struct pend_val *p = count_parts(w, seq0, parts, bytes, intr);
#ifdef FILTER_TYPE
    /* --type: replies go out only for requests of that type (on_reply does the same) */
    if (!p)
        return;
#endif
    e->kind = EV_CHUNK;
    e->nl_seq = seq0;
    e->flags = w->eflags;
    e->cap_len = n;
    __builtin_memcpy(ch->head, e, sizeof(ch->head));
    e->kind = EV_MSG;
    CLAMP(n, CHUNK_MAX);
    read_walked(ch->data, n, w->base + start);
    submit(ctx, (struct nl_event *)ch, sizeof(ch->head) + n, parts);
}
#endif

/* ------------------------------------------------ extack and lock waits */

/* The kernel's error text, even for sockets that did not ask for extended acks. */
static __always_inline int on_extack_text(void *ctx, const void *text)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct call *c = call_get();
    if (!c)
        return 0;
    u32 zero = 0;
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    if (!e)
        return 0;
    e->kind = EV_EXTACK;
    e->ts_ns = bpf_ktime_get_ns();
    e->dur_ns = 0;
    e->sk = c->sk;
    e->pid = c->pid;
    e->tid = tid;
    e->proto = c->proto;
    e->netns = c->netns;
    e->nl_seq = c->syscall == SC_KERNEL ? (u32)c->arg_len : 0;  /* kernel layer: the request's seq */
    e->flags = 0;
    e->peer_portid = 0;
    e->peer_pid = 0;
    __builtin_memcpy(e->comm, c->comm, sizeof(e->comm));
    int n = bpf_probe_read_kernel_str(e->data, EXTACK_MAX, text);
    e->cap_len = n > 0 ? n - 1 : 0;
    emit_event(ctx, e);
    return 0;
}

/* A lock wait begins (the first of nested ones counts): when, and the mutex's owner. */
static __always_inline void lock_wait_begin(struct lock_track *l, u64 lock_addr, u32 flags)
{
    if (l->lock_begin)
        return;
    l->lock_begin = bpf_ktime_get_ns();
    l->lock_addr = lock_addr;
    l->cur_holder_pid = 0;
    if (flags & LCB_F_MUTEX) {
        u64 owner = read_kptr(lock_addr + OFF_MUTEX_OWNER) & ~0x07ULL;
        if (owner) {
            bpf_probe_read_kernel(&l->cur_holder_pid, sizeof(u32), (void *)(owner + OFF_TASK_TGID));
            bpf_probe_read_kernel(l->cur_holder_comm, 16, (void *)(owner + OFF_TASK_COMM));
        }
    }
}

/* That wait ends: its time is added, and the longest's owner kept. Returns the wait. */
static __always_inline u64 lock_wait_end(struct lock_track *l, u64 lock_addr)
{
    if (!l->lock_begin || l->lock_addr != lock_addr)
        return 0;
    u64 wait = bpf_ktime_get_ns() - l->lock_begin;
    l->lock_wait += wait;
    if (wait > l->lock_max && l->cur_holder_pid) {
        l->lock_max = wait;
        l->holder_pid = l->cur_holder_pid;
        __builtin_memcpy(l->holder_comm, l->cur_holder_comm, 16);
    }
    l->lock_begin = 0;
    return wait;
}

/* Time a netlink call spends waiting for kernel locks, and who held the mutex. */
static __always_inline int on_contention_begin(u64 lock_addr, u32 flags)
{
    struct call *c = call_get();
    if (c)
        lock_wait_begin(&c->lk, lock_addr, flags);
    return 0;
}

static __always_inline int on_contention_end(u64 lock_addr)
{
    struct call *c = call_get();
    if (c)
        lock_wait_end(&c->lk, lock_addr);
    return 0;
}


#if !defined(KERNEL_LAYER) && !defined(SOCK_LAYER)
/* =========================================================================
 * Syscall layer: netlink traffic as processes send and receive it.
 *
 * sys_enter_* resolves fd -> netlink socket (through BTF offsets, so dup'ed
 * and inherited fds count) and remembers the call; sys_exit_* sets up a walk
 * over the user buffers and tail-calls walk(), which handles WALK_CHUNK steps
 * per run and re-enters itself.
 */

#ifdef MODE_TRACE
int walk_chunk(void *ctx)
{
    u32 zero = 0;
    struct walk_state *w = walkst.lookup(&zero);
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    struct chunk_event *ch = chunk_buf.lookup(&zero);
    if (!w || !e || !ch)
        return 0;
    emit_chunk(ctx, w, e, ch);
    if (w->tail < MAX_TAIL) {
        w->tail++;
        progs.call(ctx, PROG_WALK);     /* back to walk: the final reply, other segments */
    }
    stat_inc(ST_TRUNC_WALK);
    return 0;
}
#endif

int walk(void *ctx)
{
    u32 zero = 0;
    struct walk_state *w = walkst.lookup(&zero);
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    if (!w || !e)
        return 0;
#ifdef MODE_TRACE
    if (w->tail < MAX_TAIL && chunk_ready(w)) {
        w->tail++;
        progs.call(ctx, PROG_SECOND);
    }
#endif
    struct top_val *t = 0;
#ifdef MODE_TOP
    t = top_entry(w);
#endif
    int more = 1;
#pragma clang loop unroll(disable)
    for (int i = 0; i < WALK_CHUNK; i++) {
#ifdef HEADER_WALK
        w->in_dump = 0;
#endif
        more = walk_step(ctx, w, e, t);
        if (more != STEP_ON)
            break;
#ifdef HEADER_WALK
        if (w->in_dump)
            break;
#endif
    }
    if (more == STEP_SPLIT) {
        if (w->tail < MAX_TAIL) {
            w->tail++;
            progs.call(ctx, PROG_SPLIT);
        }
        stat_inc(ST_TRUNC_WALK);        /* out of tail calls */
        return 0;
    }
#ifdef HEADER_WALK
    /* Of a dump's parts these modes only count: once one is seen, the rest of the
     * run goes header by header in walk_hdrs (a 32 KB chunk is ~600 parts; a full
     * step reads each whole and looks its request up). top counts notifications
     * too: a long run of them goes there after WALK_CHUNK full steps. */
    int hdrs = w->in_dump;
#ifdef MODE_TOP
    hdrs |= w->c.dir == DIR_RECV;
#endif
    if (more && hdrs && !w->skip && w->off + NLMSG_HDRLEN <= w->seg_len
        && w->tail < MAX_TAIL) {
        w->tail++;
        progs.call(ctx, PROG_SECOND);
    }
#endif
    if (more) {
        if (w->tail < MAX_TAIL) {
            w->tail++;
            progs.call(ctx, PROG_WALK);
        }
        /* still here: out of tail calls, the rest of this call goes unseen */
        stat_inc(ST_TRUNC_WALK);
    }
    return 0;
}

#ifdef HEADER_WALK
/* A separate program: with the full steps in one, 6.1's verifier gives up. */
int walk_hdrs(void *ctx)
{
    u32 zero = 0;
    struct walk_state *w = walkst.lookup(&zero);
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    if (!w || !e)
        return 0;
    walk_headers(ctx, w, e, 0);
    if (w->tail < MAX_TAIL) {
        w->tail++;
        progs.call(ctx, PROG_WALK);     /* back for the rest: the final reply, other segments */
    }
    stat_inc(ST_TRUNC_WALK);
    return 0;
}
#endif

/* A message whose kept part goes on past the end of its iovec: its bytes are gathered from
 * the iovecs that follow, as the kernel joins them into one buffer (a header may come in 16
 * one-byte pieces, with empty iovecs between), as far as the mode keeps of it; then it is
 * handled as walk_step handles a whole one. A gather that needs more iovecs than one run
 * looks at goes on in the next run (w->got, w->split_len), as long as tail calls last. */
#define SPLIT_SEGS 16
/* How much of a message walk_split gathers: its header, then what the mode keeps. */
static __always_inline u64 split_want(struct walk_state *w)
{
    u64 len = w->split_len;
    return !w->split_hdr ? NLMSG_HDRLEN : len < GATHER_MAX ? len : GATHER_MAX;
}

int walk_split(void *ctx)
{
    u32 zero = 0;
    struct walk_state *w = walkst.lookup(&zero);
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    if (!w || !e)
        return 0;
    /* The gather's state stays in the map value, read afresh each turn: the verifier does
     * not track map contents, so the turns' states prune (in registers their ranges
     * differ at every turn, and 6.1's verifier ran out of its million instructions). */
#pragma clang loop unroll(disable)
    for (int i = 0; i < SPLIT_SEGS; i++) {
        u64 got = w->got, want = split_want(w);
        if (got >= want || (w->split_hdr && w->split_len < NLMSG_HDRLEN))
            break;
        if (w->off >= w->seg_len) {
            if (!next_iov(w))
                break;          /* the buffer ends first */
            continue;
        }
        u64 n = w->seg_len - w->off;
        if (n > want - got)
            n = want - got;
        u64 at = got;
        asm volatile("" : "+r"(at));
        at &= AT_MASK;                      /* got < want <= SNAPLEN: no change */
        asm volatile("" : "+r"(n));
        n &= PIECE_MASK;                    /* n <= want - got <= SNAPLEN: no change */
        read_user(e->data + at, n, (void *)(w->base + w->off));
        w->got = got + n;
        w->off += n;
        if (!w->split_hdr && got + n >= NLMSG_HDRLEN) {
            w->split_len = *(u32 *)e->data;
            w->split_hdr = 1;
        }
    }
    u64 got = w->got, len = w->split_len;
    if (got < split_want(w) && (!w->split_hdr || len >= NLMSG_HDRLEN)
        && (w->off < w->seg_len || (w->remaining && w->iov_idx < w->iov_cnt))) {
        /* more iovecs to gather from than one run looks at */
        if (w->tail < MAX_TAIL) {
            w->tail++;
            progs.call(ctx, PROG_SPLIT);
        }
        stat_inc(ST_TRUNC_WALK);
        return 0;
    }
    u8 whole = w->split_hdr && len >= NLMSG_HDRLEN;
    w->got = 0;
    w->split_len = 0;
    w->split_hdr = 0;
    u32 hdr[4] = {};
    __builtin_memcpy(hdr, e->data, sizeof(hdr));       /* zeroed past what was gathered */
    message_event(w, e, hdr);
    u64 cap = got;
    CLAMP(cap, SNAPLEN);
    e->cap_len = cap;
    if (!whole) {
        /* a tail shorter than a header, or a header whose nlmsg_len is below one */
        buffer_end(ctx, w, e, hdr[0]);
    } else {
        u8 overlong = len > w->split_left;
        if (overlong)
            e->flags |= EVF_OVERLONG;
        struct top_val *t = 0;
#ifdef MODE_TOP
        t = top_entry(w);
#endif
        dispatch(ctx, w, e, t);
        if (overlong) {
            w->off = w->seg_len;
            w->remaining = 0;
        } else {
            w->skip = ((len + 3) & ~3ULL) - got;
        }
    }
    if (w->tail < MAX_TAIL) {
        w->tail++;
        progs.call(ctx, PROG_WALK);     /* on with the rest of the buffer */
    }
    stat_inc(ST_TRUNC_WALK);
    return 0;
}

/* Common exit: take the call, report failures, start the walk. */
static __always_inline int exit_call(void *ctx, long ret)
{
    struct call *c = call_get();
    if (!c)
        return 0;
    u32 zero = 0;
    struct walk_state *w = walkst.lookup(&zero);
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    if (!w || !e) {
        call_end(c);
        return 0;
    }
    __builtin_memcpy(&w->c, c, sizeof(struct call));
    call_end(c);
    w->now = bpf_ktime_get_ns();
    w->ret = ret;
    w->groups = 0;
    w->tail = 0;
    w->lock_charged = 0;
    w->skip = 0;
    w->off = 0;
    w->seg_len = 0;
    w->is_mmsg = 0;
    w->flat = 0;
    w->kmem = 0;
    w->eflags = 0;
    w->in_dump = 0;
    w->mmsg_idx = 0;
    w->mmsg_cnt = 0;
    w->iov_idx = 0;
    w->iov_cnt = 0;
    w->peer_portid = 0;
    w->peer_pid = 0;
    w->got = 0;
    w->split_len = 0;
    w->split_hdr = 0;
    fill_common(e, w, EV_MSG);

#ifdef MODE_SLOW
    if (w->now - w->c.ts >= SPAN_MIN_NS) {
        e->kind = EV_SPAN;
        e->cap_len = 0;
        e->lock_wait_ns = w->c.lk.lock_wait;
        e->holder_pid = w->c.lk.holder_pid;
        __builtin_memcpy(e->holder_comm, w->c.lk.holder_comm, sizeof(e->holder_comm));
        emit_event(ctx, e);
        e->kind = EV_MSG;
    }
#endif
    if (ret < 0) {
        /* EAGAIN, EINTR and the kernel-internal restart codes (512-516) are not failures */
        if (ret != -EAGAIN && ret != -EINTR && !(ret <= -512 && ret >= -516)) {
#ifdef MODE_TOP
            struct top_val *t = top_entry(w);
            if (t)
                __sync_fetch_and_add(&t->errors, 1);
#else
            e->kind = EV_SYSERR;
            e->cap_len = 0;
            emit_event(ctx, e);
#endif
        }
        return 0;
    }

    u8 sc = w->c.syscall;
    u64 name = 0;               /* the datagram's address (sockaddr_nl), if the call gave one */
    u32 namelen = 0;
    if (sc == SC_SENDTO || sc == SC_RECVFROM || sc == SC_WRITE || sc == SC_READ) {
        /* one buffer */
        w->flat = 1;
        w->base = w->c.arg_ptr;
        w->seg_len = (u64)ret < w->c.arg_len ? (u64)ret : w->c.arg_len;
        w->remaining = 0;
        name = w->c.addr_ptr;
        namelen = w->c.addr_len;
    } else if (sc == SC_SENDMSG || sc == SC_RECVMSG) {
        u64 hdr[4] = {};        /* msg_name, msg_namelen, msg_iov, msg_iovlen */
        read_user(hdr, sizeof(hdr), (void *)w->c.arg_ptr);
        w->iov_ptr = hdr[2];
        w->iov_cnt = hdr[3];
        w->remaining = ret;
        name = hdr[0];
        namelen = hdr[1];
    } else if (sc == SC_SENDMMSG || sc == SC_RECVMMSG) {
        /* ret is the number of datagrams done */
        w->is_mmsg = 1;
        w->mmsg_ptr = w->c.arg_ptr;
        w->mmsg_cnt = ret;
        u64 hdr[4] = {};
        u32 len = 0;
        read_user(hdr, sizeof(hdr), (void *)w->mmsg_ptr);
        read_user(&len, sizeof(len), (void *)(w->mmsg_ptr + 56));
        w->iov_ptr = hdr[2];
        w->iov_cnt = hdr[3];
        w->remaining = ret > 0 ? len : 0;
        name = hdr[0];
        namelen = hdr[1];
    } else {
        /* writev, readv, pwritev2, preadv2: an iovec array */
        w->iov_ptr = w->c.arg_ptr;
        w->iov_cnt = w->c.arg_len;
        w->remaining = ret;
    }
    walk_peer(w, name, namelen, 0);
    e->groups = w->groups;      /* known only now: multicast vs unicast, kernel vs process */
    e->peer_portid = w->peer_portid;
    e->peer_pid = w->peer_pid;
#if defined(MODE_ERRORS) || defined(MODE_SLOW)
    if (w->c.dir == DIR_RECV && (w->groups || w->peer_portid) && !w->is_mmsg)
        return 0;               /* notifications, user traffic: nothing these modes look at */
#endif
    progs.call(ctx, PROG_WALK);
    stat_inc(ST_TRUNC_WALK);    /* the walk did not start (no tail call left: never) */
    return 0;
}

/* ------------------------------------------------------- syscall hooks */

/* Entry probes. Not TRACEPOINT_PROBEs, which bcc loads itself: with FD_WALK_BTF the
 * loader patches in the kfunc calls and loads them (loader.py, _attach_entries).
 * args: a syscall tracepoint's record, whose arguments are 8 bytes each.
 * The socket calls are always here; read, write and their vector forms, which a netlink
 * socket takes too (pwritev2/preadv2 with offset -1), with HOOK_RW. What reaches a socket
 * another way (io_uring, sendfile, splice, or read/write without HOOK_RW) is counted where
 * the kernel has sock:sock_send_length/sock_recv_length (ST_UNSEEN, below). */
struct sc_enter_args {
    u64 common;
    s64 nr;
    u64 arg[6];
};

/* Exit probes: every hooked syscall's exit record is laid out alike, so one program,
 * sc_exit, does exit_call for them all, loaded and verified once; each exit's own
 * program tail-calls it when its thread has a netlink call in flight, and costs the
 * other calls (read and write everywhere) a look at task storage. */
struct sc_exit_args {
    u64 common;
    s64 nr;                     /* int __syscall_nr, then padding */
    s64 ret;
};

int sc_exit(struct sc_exit_args *args)
{
    return exit_call(args, args->ret);
}

static __always_inline int exit_to_walk(void *ctx)
{
    if (call_get())
        progs.call(ctx, PROG_EXIT);
    return 0;
}

int sc_enter_sendmsg(struct sc_enter_args *args)         /* (fd, msg, flags) */
{
    return enter_call(args->arg[0], SC_SENDMSG, DIR_SEND, args->arg[1], 0, 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_sendmsg) { return exit_to_walk(args); }

int sc_enter_sendto(struct sc_enter_args *args)          /* (fd, buf, len, flags, addr, addrlen) */
{
    return enter_call(args->arg[0], SC_SENDTO, DIR_SEND, args->arg[1], args->arg[2],
                      args->arg[4], args->arg[5]);
}
TRACEPOINT_PROBE(syscalls, sys_exit_sendto) { return exit_to_walk(args); }

int sc_enter_sendmmsg(struct sc_enter_args *args)        /* (fd, mmsg, vlen, flags) */
{
    return enter_call(args->arg[0], SC_SENDMMSG, DIR_SEND, args->arg[1], args->arg[2], 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_sendmmsg) { return exit_to_walk(args); }

/* MSG_PEEK reads are skipped: the same messages come again on the real read. */
int sc_enter_recvmsg(struct sc_enter_args *args)         /* (fd, msg, flags) */
{
    if (args->arg[2] & MSG_PEEK)
        return 0;
    return enter_call(args->arg[0], SC_RECVMSG, DIR_RECV, args->arg[1], 0, 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_recvmsg) { return exit_to_walk(args); }

int sc_enter_recvfrom(struct sc_enter_args *args)        /* (fd, buf, size, flags, addr, addrlen) */
{
    if (args->arg[3] & MSG_PEEK)
        return 0;
    return enter_call(args->arg[0], SC_RECVFROM, DIR_RECV, args->arg[1], args->arg[2],
                      args->arg[4], 12);
}
TRACEPOINT_PROBE(syscalls, sys_exit_recvfrom) { return exit_to_walk(args); }

int sc_enter_recvmmsg(struct sc_enter_args *args)        /* (fd, mmsg, vlen, flags, timeout) */
{
    if (args->arg[3] & MSG_PEEK)
        return 0;
    return enter_call(args->arg[0], SC_RECVMMSG, DIR_RECV, args->arg[1], args->arg[2], 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_recvmmsg) { return exit_to_walk(args); }

/* read, write and their vector forms: hooked only with HOOK_RW (layers.RW_CALLS says
 * why; on 6.7+ sock_send_length/sock_recv_length count them otherwise) */
#ifdef HOOK_RW
int sc_enter_write(struct sc_enter_args *args)           /* (fd, buf, count) */
{
    return enter_call(args->arg[0], SC_WRITE, DIR_SEND, args->arg[1], args->arg[2], 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_write) { return exit_to_walk(args); }

int sc_enter_writev(struct sc_enter_args *args)          /* (fd, iov, iovcnt) */
{
    return enter_call(args->arg[0], SC_WRITEV, DIR_SEND, args->arg[1], args->arg[2], 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_writev) { return exit_to_walk(args); }

int sc_enter_pwritev2(struct sc_enter_args *args)        /* (fd, iov, iovcnt, pos_l, pos_h, flags) */
{
    return enter_call(args->arg[0], SC_PWRITEV2, DIR_SEND, args->arg[1], args->arg[2], 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_pwritev2) { return exit_to_walk(args); }

int sc_enter_read(struct sc_enter_args *args)            /* (fd, buf, count) */
{
    return enter_call(args->arg[0], SC_READ, DIR_RECV, args->arg[1], args->arg[2], 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_read) { return exit_to_walk(args); }

int sc_enter_readv(struct sc_enter_args *args)           /* (fd, iov, iovcnt) */
{
    return enter_call(args->arg[0], SC_READV, DIR_RECV, args->arg[1], args->arg[2], 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_readv) { return exit_to_walk(args); }

int sc_enter_preadv2(struct sc_enter_args *args)         /* (fd, iov, iovcnt, pos_l, pos_h, flags) */
{
    return enter_call(args->arg[0], SC_PREADV2, DIR_RECV, args->arg[1], args->arg[2], 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_preadv2) { return exit_to_walk(args); }
#endif /* HOOK_RW */

/* The sender of each buffer a netlink recv takes, as the kernel knows it (NETLINK_CB):
 * port 0 is the kernel, any other a process, whose pid its credentials give. A reply is
 * the kernel's only if the kernel sent it; msg_name, which says the same, is not always
 * given (read(), recv()). Fires inside the recv, once per buffer it copies out. */
TRACEPOINT_PROBE(skb, skb_copy_datagram_iovec)
{
    struct call *c = call_get();
    if (!c || c->dir != DIR_RECV)
        return 0;
    u64 cb = (u64)args->skbaddr + OFF_SKB_CB;
    u32 portid = 0;
    bpf_probe_read_kernel(&portid, sizeof(portid), (void *)(cb + OFF_NLCB_PORTID));
    u32 i = c->copies++;
    if (i == 0) {
        c->peer_portid = portid;
        c->peer_pid = 0;
        if (portid)
            bpf_probe_read_kernel(&c->peer_pid, sizeof(u32), (void *)(cb + OFF_NLCB_CREDS_PID));
        bpf_probe_read_kernel(&c->peer_group, sizeof(u32), (void *)(cb + OFF_NLCB_DST_GROUP));
    } else if (portid) {
        c->foreign |= 1ULL << (i < 64 ? i : 0);
    }
    return 0;
}

#ifdef HAVE_SOCK_LENGTH
/* A netlink send or receive with no call of this layer around it (io_uring, sendfile,
 * splice...): its messages are not walked, and it is counted as such (ST_UNSEEN). Only
 * what the filters keep counts (--type cannot be told without the messages). */
static __always_inline int count_unseen(u64 sk, u16 proto, int ret, int flags, u8 dir)
{
    if (ret <= 0 || (dir == DIR_RECV && (flags & MSG_PEEK)))
        return 0;
    struct call *c = call_get();
    if (c && c->sk == sk)
        return 0;
    if (!task_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
#ifdef FILTER_PROTO
    if (proto != FILTER_PROTO)
        return 0;
#endif
#ifdef FILTER_NETNS
    u32 netns = 0;
    bpf_probe_read_kernel(&netns, sizeof(netns),
                          (void *)(read_kptr(sk + OFF_SOCK_NET) + OFF_NET_INUM));
    if (netns != FILTER_NETNS)
        return 0;
#endif
#ifdef FILTER_COMM
    char comm[16] = {};
    bpf_get_current_comm(comm, sizeof(comm));
    if (!comm_matches(comm))
        return 0;
#endif
    stat_inc(ST_UNSEEN);
    return 0;
}

TRACEPOINT_PROBE(sock, sock_send_length)
{
    if (args->family != AF_NETLINK)
        return 0;
    return count_unseen((u64)args->sk, args->protocol, args->ret, args->flags, DIR_SEND);
}

TRACEPOINT_PROBE(sock, sock_recv_length)
{
    if (args->family != AF_NETLINK)
        return 0;
    return count_unseen((u64)args->sk, args->protocol, args->ret, args->flags, DIR_RECV);
}
#endif


#elif defined(KERNEL_LAYER)

/* =========================================================================
* Kernel-function layer: netlink as the kernel itself moves it.
 *
 * Shares the maps, filters and per-message logic above.
 *
 *   netlink_unicast        every message a process sends into the kernel, by
 *                          whatever path (sendmsg, sendmmsg, io_uring, ...)
 *   __netlink_sendskb      every message queued to a process's socket: replies,
 *                          acks and errors (read or not), dump parts
 *   netlink_broadcast*     multicast notifications, once each, marked with
 *                          whether a request handler was running (else the
 *                          kernel did it on its own: carrier loss, kworker, ...)
 *   rtnetlink_rcv_msg,     handler time per request, and the lock wait inside it
 *   genl_rcv_msg
 *   netlink_dump           time spent filling each dump chunk
 *   netlink_ack            the extack of each failed request, by socket and seq
 *
 * USE_FENTRY selects fentry/fexit; otherwise kprobes/kretprobes, attached by
 * the loader. HOOK_* says which functions this kernel has. Offsets (OFF_*)
 * come from the running kernel's BTF.
 *
 * fentry programs cannot tail-call a shared walker, so each hook walks its
 * skb itself: KWALK_FULL messages in full, then headers only.
 */


#define NETLINK_F_KERNEL_SOCKET 0x1

#ifdef MODE_TOP
#define KWALK_FULL 8
#else
#define KWALK_FULL 16
#endif
#define KWALK_CHUNKS 4          /* EV_CHUNKs per skb (trace): 64 KB, or 2,048 parts */
#define MARK_HANDLER 1
#define MARK_DUMP 2

/* netlink_dump entry time per thread */
struct dump_ts {
    u64 ts;
    u64 sk;
    u32 seq;
    u8 own_call;                /* this dump made the calls[] entry (no handler around it) */
};
BPF_HASH(dumping, u32, struct dump_ts, 10240);

static __always_inline void sock_info(u64 sk, u8 *proto, u32 *netns)
{
    u16 protocol = 0;
    bpf_probe_read_kernel(&protocol, sizeof(protocol), (void *)(sk + OFF_SOCK_PROTOCOL));
    *proto = protocol;
    u64 net = read_kptr(sk + OFF_SOCK_NET);
    bpf_probe_read_kernel(netns, sizeof(*netns), (void *)(net + OFF_NET_INUM));
}

static __always_inline int is_kernel_sock(u64 sk)
{
    u32 flags = 0;
    bpf_probe_read_kernel(&flags, sizeof(flags), (void *)(sk + OFF_NLSK_FLAGS));
    return flags & NETLINK_F_KERNEL_SOCKET;
}

/* NETLINK_CB(skb) fields */
static __always_inline u64 skb_cb_sk(u64 skb)
{
    return read_kptr(skb + OFF_SKB_CB + OFF_NLCB_SK);
}

static __always_inline u32 skb_cb_u32(u64 skb, u64 off)
{
    u32 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (void *)(skb + OFF_SKB_CB + off));
    return v;
}

static __always_inline u32 nlh_seq(u64 nlh)
{
    u32 seq = 0;
    bpf_probe_read_kernel(&seq, sizeof(seq), (void *)(nlh + 8));
    return seq;
}

/* Walk the netlink messages in an skb seen on socket sk. peer: the other end (a sent
 * skb's destination port, a received one's sender: 0 is the kernel), peer_pid: a
 * process sender's pid. */
static __always_inline int kwalk(void *ctx, u64 sk, u64 skb, u8 dir, u32 groups, u8 eflags,
                                 u32 peer, u32 peer_pid)
{
    u32 zero = 0;
    struct walk_state *w = walkst.lookup(&zero);
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    if (!w || !e || !sk || !skb)
        return 0;
    u8 proto = 0;
    u32 netns = 0;
    sock_info(sk, &proto, &netns);
    __builtin_memset(&w->c, 0, sizeof(w->c));
    if (!fill_call(&w->c, sk, proto, netns))
        return 0;
    w->c.syscall = SC_KERNEL;
    w->c.dir = dir;
    u32 len = 0;
    bpf_probe_read_kernel(&len, sizeof(len), (void *)(skb + OFF_SKB_LEN));
    w->now = w->c.ts;
    w->ret = len;
    w->groups = groups;
    w->peer_portid = peer;
    w->peer_pid = peer_pid;
    w->got = 0;
    w->split_len = 0;
    w->split_hdr = 0;
    w->eflags = eflags;
    w->tail = 0;
    w->lock_charged = 1;        /* lock waits reach pending through the handler hooks */
    w->skip = 0;
    w->off = 0;
    w->is_mmsg = 0;
    w->flat = 1;
    w->kmem = 1;
    w->base = read_kptr(skb + OFF_SKB_DATA);
    w->seg_len = len;
    w->remaining = 0;
    fill_common(e, w, EV_MSG);
#ifdef MODE_TRACE
    /* a dump skb's parts go over in bulk, as on the syscall layer (fentry programs
     * cannot tail-call, so the runs are taken here): an skb is at most ~32 KB */
    struct chunk_event *ch = chunk_buf.lookup(&zero);
    if (ch && dir == DIR_RECV && !groups && !peer) {
#pragma clang loop unroll(disable)
        for (int k = 0; k < KWALK_CHUNKS; k++) {
            if (!chunk_ready(w))
                break;
            emit_chunk(ctx, w, e, ch);
        }
    }
#endif
    struct top_val *t = 0;
#ifdef MODE_TOP
    t = top_entry(w);
#endif
    int more = 1;
    w->in_dump = 0;
#pragma clang loop unroll(disable)
    for (int i = 0; i < KWALK_FULL; i++) {
        more = walk_step(ctx, w, e, t);     /* an skb is one buffer: never STEP_SPLIT */
        if (more != STEP_ON)
            break;
#ifdef HEADER_WALK
        if (w->in_dump)
            break;              /* the rest of a dump's parts: counted by header */
#endif
    }
    if (more == STEP_ON)
        walk_headers(ctx, w, e, 1);
    return 0;
}

/* ------------------------------------------------------------ handlers */

/* A process sends to port `portid` (0: the kernel). */
static __always_inline int on_unicast(void *ctx, u64 ssk, u64 skb, u32 portid)
{
    /* kernel -> user unicasts are seen where they are queued (__netlink_sendskb) */
    if (!ssk || is_kernel_sock(ssk))
        return 0;
    return kwalk(ctx, ssk, skb, DIR_SEND, 0, 0, portid, 0);
}

/* An skb from the kernel is queued to socket sk. */
static __always_inline int on_sendskb(void *ctx, u64 sk, u64 skb)
{
    /* multicast copies are seen once, at netlink_broadcast */
    if (skb_cb_u32(skb, OFF_NLCB_DST_GROUP))
        return 0;
    /* From a process (NETLINK_CB's portid is its port; the kernel's is 0): this runs in
     * the sender's context, which does not know whose socket sk is. Its message is seen
     * once, where it is sent (on_unicast), with the port it went to. */
    if (skb_cb_u32(skb, OFF_NLCB_PORTID))
        return 0;
    return kwalk(ctx, sk, skb, DIR_RECV, 0, 0, 0, 0);
}

static __always_inline int on_broadcast(void *ctx, u64 ssk, u64 skb, u32 group)
{
#ifdef MODE_TRACE
    /* a process may multicast too (NETLINK_USERSOCK, or with CAP_NET_ADMIN): its send is
     * seen as such (on_unicast, which netlink_sendmsg calls as well), not as a
     * notification from the kernel */
    if (is_kernel_sock(ssk) == 0)
        return 0;
    struct call *c = call_get();
    u8 eflags = (c && c->arg_ptr == MARK_HANDLER) ? EVF_IN_HANDLER : 0;
    return kwalk(ctx, ssk, skb, DIR_RECV, group ? group : 0xffffffff, eflags, 0, 0);
#else
    /* Only trace shows notifications. And a broadcast is seen here where it is sent,
     * in the sender's context (the request that caused it, a kworker), so who receives
     * it is not known: top must not count it as the sender's message in. Not walked. */
    return 0;
#endif
}

/* A request handler starts: lock waits from here on are this request's. */
static __always_inline int on_handler_enter(u64 skb, u64 nlh)
{
    u64 sk = skb_cb_sk(skb);
    if (!sk)
        return 0;
    struct call c = {};
    u8 proto = 0;
    u32 netns = 0;
    sock_info(sk, &proto, &netns);
    if (!fill_call(&c, sk, proto, netns))
        return 0;
    c.syscall = SC_KERNEL;
    c.arg_ptr = MARK_HANDLER;
    c.arg_len = nlh_seq(nlh);
    call_put(&c);
    return 0;
}

/* Charge time and lock wait of a finished call[] to its pending request. */
static __always_inline void charge(struct call *c, u64 sk, u32 seq, u64 dur, int is_dump)
{
    struct pend_val *p = pend_find(sk, seq);
    if (!p)
        return;
    if (is_dump)
        p->dump_ns += dur;
    else
        p->handler_ns += dur;
    if (!c)
        return;
    pend_add_locks(p, &c->lk);
}

static __always_inline int on_handler_exit(void)
{
    struct call *c = call_get();
    if (!c || c->arg_ptr != MARK_HANDLER)
        return 0;
    charge(c, c->sk, (u32)c->arg_len, bpf_ktime_get_ns() - c->ts, 0);
    call_end(c);
    return 0;
}

/* One dump chunk: its time (and, outside a handler, its lock waits). */
static __always_inline int on_dump_enter(u64 sk)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct dump_ts d = {.ts = bpf_ktime_get_ns(), .sk = sk};
    u64 nlh = read_kptr(sk + OFF_NLSK_CB_NLH);
    d.seq = nlh ? nlh_seq(nlh) : 0;
    if (!call_get()) {
        struct call c = {};
        u8 proto = 0;
        u32 netns = 0;
        sock_info(sk, &proto, &netns);
        if (!fill_call(&c, sk, proto, netns))
            return 0;
        c.syscall = SC_KERNEL;
        c.arg_ptr = MARK_DUMP;
        c.arg_len = d.seq;
        call_put(&c);
        d.own_call = 1;
    }
    dumping.update(&tid, &d);
    return 0;
}

static __always_inline int on_dump_exit(void)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct dump_ts *d = dumping.lookup(&tid);
    if (!d)
        return 0;
    struct call *c = d->own_call ? call_get() : 0;
    charge(c, d->sk, d->seq, bpf_ktime_get_ns() - d->ts, 1);
    if (c)
        call_end(c);
    dumping.delete(&tid);
    return 0;
}

/* The kernel's error text, keyed by the request's socket and seq. */
static __always_inline int on_ack(void *ctx, u64 in_skb, u64 nlh, u64 extack)
{
    if (!extack)
        return 0;
    u64 msg = read_kptr(extack + OFF_EXTACK_MSG);
    if (!msg)
        return 0;
    u64 sk = skb_cb_sk(in_skb);
    if (!sk)
        return 0;
    u32 zero = 0;
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    struct walk_state *w = walkst.lookup(&zero);
    if (!e || !w)
        return 0;
    u8 proto = 0;
    u32 netns = 0;
    sock_info(sk, &proto, &netns);
    __builtin_memset(&w->c, 0, sizeof(w->c));
    if (!fill_call(&w->c, sk, proto, netns))
        return 0;
    w->now = w->c.ts;
    w->groups = 0;
    w->peer_portid = 0;
    w->peer_pid = 0;
    w->ret = 0;
    w->c.syscall = SC_KERNEL;
    fill_common(e, w, EV_EXTACK);
    e->nl_seq = nlh_seq(nlh);
    int n = bpf_probe_read_kernel_str(e->data, EXTACK_MAX, (void *)msg);
    e->cap_len = n > 0 ? n - 1 : 0;
    emit_event(ctx, e);
    return 0;
}

/* --------------------------------------------------------- attachments */

#ifdef USE_FENTRY
#ifdef HOOK_UNICAST
KFUNC_PROBE(netlink_unicast, void *ssk, void *skb, u32 portid, int nonblock)
{
    return on_unicast(ctx, (u64)ssk, (u64)skb, portid);
}
#endif
#ifdef HOOK_SENDSKB
KFUNC_PROBE(__netlink_sendskb, void *sk, void *skb)
{
    return on_sendskb(ctx, (u64)sk, (u64)skb);
}
#endif
#ifdef HOOK_BROADCAST_FILTERED
KFUNC_PROBE(netlink_broadcast_filtered, void *ssk, void *skb, u32 portid, u32 group)
{
    return on_broadcast(ctx, (u64)ssk, (u64)skb, group);
}
#elif defined(HOOK_BROADCAST)
KFUNC_PROBE(netlink_broadcast, void *ssk, void *skb, u32 portid, u32 group)
{
    return on_broadcast(ctx, (u64)ssk, (u64)skb, group);
}
#endif
#ifdef HOOK_RTNL_RCV
KFUNC_PROBE(rtnetlink_rcv_msg, void *skb, void *nlh, void *extack)
{
    return on_handler_enter((u64)skb, (u64)nlh);
}
KRETFUNC_PROBE(rtnetlink_rcv_msg, void *skb, void *nlh, void *extack, int ret)
{
    return on_handler_exit();
}
#endif
#ifdef HOOK_GENL_RCV
KFUNC_PROBE(genl_rcv_msg, void *skb, void *nlh, void *extack)
{
    return on_handler_enter((u64)skb, (u64)nlh);
}
KRETFUNC_PROBE(genl_rcv_msg, void *skb, void *nlh, void *extack, int ret)
{
    return on_handler_exit();
}
#endif
#ifdef HOOK_DUMP
KFUNC_PROBE(netlink_dump, void *sk)
{
    return on_dump_enter((u64)sk);
}
KRETFUNC_PROBE(netlink_dump, void *sk, int lock_taken, int ret)
{
    return on_dump_exit();
}
#endif
#ifdef HOOK_ACK
KFUNC_PROBE(netlink_ack, void *in_skb, void *nlh, int err, void *extack)
{
    return on_ack(ctx, (u64)in_skb, (u64)nlh, (u64)extack);
}
#endif

#else /* kprobes: attached by name from the loader */

int kp_unicast(struct pt_regs *ctx)
{
    return on_unicast(ctx, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), (u32)PT_REGS_PARM3(ctx));
}
int kp_sendskb(struct pt_regs *ctx)
{
    return on_sendskb(ctx, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx));
}
int kp_broadcast(struct pt_regs *ctx)
{
    return on_broadcast(ctx, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), (u32)PT_REGS_PARM4(ctx));
}
int kp_handler(struct pt_regs *ctx)
{
    return on_handler_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx));
}
int kr_handler(struct pt_regs *ctx)
{
    return on_handler_exit();
}
int kp_dump(struct pt_regs *ctx)
{
    return on_dump_enter(PT_REGS_PARM1(ctx));
}
int kr_dump(struct pt_regs *ctx)
{
    return on_dump_exit();
}
int kp_ack(struct pt_regs *ctx)
{
    return on_ack(ctx, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx));
}
#endif

#else /* SOCK_LAYER */
/* =========================================================================
 * Socket-tracepoint layer (Linux 6.7+, x86-64): netlink as it reaches sockets.
 *
 *   sock:sk_data_ready     a buffer (skb) was queued to a socket: on a netlink
 *                          socket, replies, acks and errors (read or not) and
 *                          dump parts, in the context that made them, which is
 *                          the requester's own send for a synchronous handler
 *   sock:sock_send_length  a send is done; on a netlink socket the kernel has
 *                          handled its requests by then, and they are still in
 *                          the sender's buffer (found from the syscall's registers)
 *   a task iterator        (slow) run by the loader every few tens of ms: which
 *                          threads are inside a netlink send, since when
 *
 * The two tracepoints are loaded as BTF tracepoints (tp_btf): struct fields are
 * plain loads, checked against the running kernel's BTF, where the other
 * layers pay a helper call each. No syscall takes the tracing slow path for
 * this layer (the syscall layer puts every syscall of every task on it), and a
 * hook runs once per netlink buffer or netlink send: ~90 ns each on a small VM.
 *
 * What it cannot see is when a request started: no tracepoint fires at the
 * start of a send. So `errors` shows no latency here, `top` no latency
 * columns, and `slow` brackets a long call's start between two iterator
 * passes.
 *
 * Per command: errors (sock_ready, and drops_poll each second), top (sock_ready),
 * slow (sock_sent, and slow_poll every tenth of its threshold).
 */

#define NR_SENDTO 44            /* x86-64 syscall numbers */
#define NR_SENDMSG 46
#define NR_SENDMMSG 307
#define PF_KTHREAD 0x00200000
#define NLM_F_CAPPED 0x100
#define SCAN_HDRS 2048          /* messages in a dump skb (~32 KB) of 16 bytes and more */
/* a struct nlmsghdr, or a struct nlmsgerr (its error, then the header it echoes), in kernel
 * memory: read field by field at their own sizes (the verifier checks each against BTF) */
#define NLH(p) rdonly_cast((u64)(p), NLMSGHDR_ID)
#define NLERR(p) rdonly_cast((u64)(p), NLMSGERR_ID)
#define NLH_LEN(h) (*(u32 *)((h) + 0))
#define NLH_TYPE(h) (*(u16 *)((h) + 4))
#define NLH_FLAGS(h) (*(u16 *)((h) + 6))
#define NLH_SEQ(h) (*(u32 *)((h) + 8))
#define NLERR_ERROR(e) (*(s32 *)((e) + 0))
#define NLERR_MSG(e) ((e) + 4)
#define REPLY_LOOK 8            /* skbs of the receive queue looked at for a slow call's reply */
#define EXTACK_WINDOW_NS 1000000ULL     /* an error text belongs to the reply queued right after it */

/* pt_regs of a task (its syscall's arguments), a BTF pointer: fields are plain loads */
static u64 (*task_pt_regs_h)(void *task) = (void *)BPF_FUNC_task_pt_regs;

/* What this layer keeps per thread. */
struct sock_task {
    u64 sends;                  /* netlink sends done: the iterator tells calls apart by it */
    u64 long_since;             /* slow: the current send ran past SLOW_NS; it began after this */
    u64 long_seen;              /* ... and before this */
    struct lock_track lk;       /* lock waits in netlink sends since the last one ended */
#if defined(MODE_ERRORS) || defined(MODE_SLOW)
    u64 extack_ts;              /* netlink:netlink_extack text raised in this thread */
    u32 extack_len;
    u32 pad;
    char extack[EXTACK_MAX];
#endif
};
BPF_TASK_STORAGE(sock_tasks, struct sock_task);

static __always_inline u32 sock_netns(u64 sk)
{
    u64 net = *(u64 *)(sk + OFF_SOCK_NET);
    return *(u32 *)(net + OFF_NET_INUM);
}

/* Do the filters keep what the current thread does on netlink socket sk? */
static __always_inline int sock_wanted(u64 sk)
{
    if (!task_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
#ifdef FILTER_PROTO
    if (*(u16 *)(sk + OFF_SOCK_PROTOCOL) != FILTER_PROTO)
        return 0;
#endif
#ifdef FILTER_NETNS
    if (sock_netns(sk) != FILTER_NETNS)
        return 0;
#endif
#ifdef FILTER_COMM
    char comm[16] = {};
    bpf_get_current_comm(comm, sizeof(comm));
    if (!comm_matches(comm))
        return 0;
#endif
    return 1;
}

/* Who and where, for an event about socket sk made in the current context. */
static __always_inline void sock_event(struct nl_event *e, u64 sk, u8 kind, u8 dir, u64 now)
{
    u64 id = bpf_get_current_pid_tgid();
    e->kind = kind;
    e->dir = dir;
    e->ts_ns = now;
    e->dur_ns = 0;
    e->sk = sk;
    e->cgroup = bpf_get_current_cgroup_id();
    e->pid = id >> 32;
    e->tid = (u32)id;
    e->netns = sock_netns(sk);
    e->proto = *(u16 *)(sk + OFF_SOCK_PROTOCOL);
    e->groups = 0;
    e->ret = 0;
    e->syscall = SC_KERNEL;
    e->flags = 0;
    e->lock_wait_ns = 0;
    e->holder_pid = 0;
    e->skipped_parts = 0;
    e->skipped_bytes = 0;
    e->handler_ns = 0;
    e->dump_ns = 0;
    e->start_slack_ns = 0;
    e->peer_portid = 0;
    e->peer_pid = 0;
    e->cap_len = 0;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    u32 portid = 0;
    bpf_probe_read_kernel(&portid, sizeof(portid), (void *)(sk + OFF_NLSK_PORTID));
    e->portid = portid;
}

/* Copy n (bounded here) bytes of kernel memory at src into e's data, and hand e over. */
static __always_inline void sock_emit_kmem(void *ctx, struct nl_event *e, u64 src, u64 n)
{
    CLAMP(n, SNAPLEN);
    if (bpf_probe_read_kernel(e->data, n, (void *)src))
        n = 0;
    e->cap_len = n;
    emit_event(ctx, e);
}

static __always_inline void sock_header(struct nl_event *e, u32 *h)
{
    e->nl_len = h[0];
    e->nl_type = h[1] & 0xffff;
    e->nl_flags = h[1] >> 16;
    e->nl_seq = h[2];
}

#if defined(MODE_ERRORS) || defined(MODE_SLOW)
/* The error text the kernel raised in this thread just before (netlink:netlink_extack),
 * handed over keyed by the failed request's socket and seq. */
static __always_inline void sock_emit_extack(void *ctx, struct nl_event *e, u64 sk, u32 seq,
                                             u64 now)
{
    struct sock_task *s = sock_tasks.task_storage_get(bpf_get_current_task_btf(), 0, 0);
    if (!s || !s->extack_ts || now - s->extack_ts > EXTACK_WINDOW_NS)
        return;
    s->extack_ts = 0;
    sock_event(e, sk, EV_EXTACK, DIR_RECV, now);
    e->nl_seq = seq;
    __builtin_memcpy(e->data, s->extack, EXTACK_MAX);
    u32 n = s->extack_len;
    e->cap_len = n < EXTACK_MAX ? n : EXTACK_MAX;
    emit_event(ctx, e);
}

static __always_inline int sock_extack(const void *text)
{
    struct sock_task *s = sock_tasks.task_storage_get(bpf_get_current_task_btf(), 0,
                                                      BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (!s)
        return 0;
    int n = bpf_probe_read_kernel_str(s->extack, EXTACK_MAX, text);
    s->extack_len = n > 0 ? n - 1 : 0;
    s->extack_ts = bpf_ktime_get_ns();
    return 0;
}
#endif

/* ------------------------------------------------------- dump buffers */

#if defined(MODE_ERRORS) || defined(MODE_TOP)
/* A dump's parts arrive over many buffers: what the ones so far held, per socket. */
struct dump_state {
    u64 parts;
    u64 bytes;
    u32 seq;
    u8 intr;
    u8 pad[3];
};
BPF_TABLE("lru_hash", u64, struct dump_state, dumps, 4096);

struct scan {
    u64 parts;
    u64 bytes;
    u32 done_off;               /* where the NLMSG_DONE (or ERROR) is, if done */
    u32 done_len;
    s32 done_err;
    u8 intr;
    u8 done;
    u8 pad[2];
};
/* The scan's results live in a map value, not in registers: the verifier does not
 * track map contents, so every way out of the loop leaves the same state and what
 * follows is checked once, not once per exit (2,048 of them). */
BPF_PERCPU_ARRAY(scans, struct scan, 1);

/* Walk the headers of a dump buffer of len bytes at data (plain loads, through
 * rdonly_cast: a helper call per header would be ~180 of them for 10 KB of routes). */
static __always_inline struct scan *scan_dump(u64 data, u32 len)
{
    u32 zero = 0;
    struct scan *r = scans.lookup(&zero);
    if (!r)
        return 0;
    __builtin_memset(r, 0, sizeof(*r));
    u64 n = len;
    u64 off = 0;
#pragma clang loop unroll(disable)
    for (int i = 0; i < SCAN_HDRS; i++) {
        if (off + NLMSG_HDRLEN > n)
            break;
        u64 h = NLH(data + off);
        u32 mlen = NLH_LEN(h);
        u16 type = NLH_TYPE(h);
        if (mlen < NLMSG_HDRLEN)
            break;
        r->intr |= NLH_FLAGS(h) & NLM_F_DUMP_INTR;
        if (type <= NLMSG_DONE) {
            r->done = 1;
            r->done_off = off;
            r->done_len = mlen;
            r->done_err = off + 20 <= n ? NLERR_ERROR(NLERR(data + off + 16)) : 0;
            break;
        }
        r->parts++;
        r->bytes += mlen;
        off += (mlen + 3) & ~3U;
    }
    return r;
}
#endif

/* A task's cgroup v2 id: task->cgroups->dfl_cgrp->kn->id (iterators: not current). */
static __always_inline u64 task_cgroup_id(u64 task)
{
    u64 cg = read_kptr(read_kptr(read_kptr(task + OFF_TASK_CGROUPS) + OFF_CSS_DFL_CGRP)
                       + OFF_CGROUP_KN);
    return cg ? read_kptr(cg + OFF_KN_ID) : 0;
}

#ifdef MODE_ERRORS
/* ---------------------------------------------------------- overruns */

/* A netlink socket whose receive queue was full lost what the kernel could not
 * queue (ENOBUFS for its reader). No hook here sees a recv, so errors looks at the
 * sockets' drop counters instead: an iterator over every open file, run each
 * second by the loader, hands over each netlink socket whose count grew, with a
 * process that holds it. */
#define ENOBUFS 105
static u64 (*sock_from_file_h)(void *file) = (void *)BPF_FUNC_sock_from_file;
BPF_TABLE("lru_hash", u64, u32, sock_drops, 16384);    /* sk -> its drops when last seen */
BPF_ARRAY(drops_first, u32, 1);     /* the loader's: 1 in the first pass (earlier drops are history) */

int drops_poll(u64 *ctx)
{
    u64 file = ctx[3];
    asm volatile("" : "+r"(file));
    if (!file)
        return 0;
    u64 sock = sock_from_file_h((void *)file);
    if (!sock)
        return 0;
    u64 sk = *(u64 *)(sock + OFF_SOCKET_SK);
    if (!sk || *(u16 *)(sk + OFF_SOCK_FAMILY) != AF_NETLINK)
        return 0;
    u32 drops = *(u32 *)(sk + OFF_SOCK_DROPS);
    u32 *seen = sock_drops.lookup(&sk);
    u32 was = seen ? *seen : 0;
    if (drops == was)
        return 0;
    sock_drops.update(&sk, &drops);
    u32 zero = 0;
    u32 *first = drops_first.lookup(&zero);
    if ((first && *first) || drops < was)
        return 0;
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    u64 task = ctx[1];
    if (!e || !task)
        return 0;
    e->kind = EV_SYSERR;
    e->dir = DIR_RECV;
    e->ts_ns = bpf_ktime_get_ns();
    e->dur_ns = 0;
    e->sk = sk;
    e->pid = *(u32 *)(task + OFF_TASK_TGID);
    e->tid = *(u32 *)(task + OFF_TASK_PID);
    e->cgroup = task_cgroup_id(task);
    e->netns = sock_netns(sk);
    e->proto = *(u16 *)(sk + OFF_SOCK_PROTOCOL);
    e->syscall = SC_KERNEL;
    e->ret = -ENOBUFS;
    e->skipped_parts = drops - was;     /* messages dropped since the last look */
    e->flags = 0;
    e->peer_portid = 0;
    e->peer_pid = 0;
    e->cap_len = 0;
    u32 portid = 0;
    bpf_probe_read_kernel(&portid, sizeof(portid), (void *)(sk + OFF_NLSK_PORTID));
    e->portid = portid;
    bpf_probe_read_kernel(e->comm, sizeof(e->comm), (void *)(task + OFF_TASK_COMM));
    emit_event(ctx, e);
    return 0;
}
#endif

/* ---------------------------------------------------------------- top */

#ifdef MODE_TOP
/* top's counts go first to a per-CPU slot for the process that last did netlink on
 * this CPU: plain adds, no hash lookup or atomic per message (those were most of a
 * send's probe time). A slot is flushed into the shared maps when another process
 * takes it; userspace adds what the slots hold when it reads (loader.read_top). */
struct top_slot {
    u32 pid;
    u16 type;                   /* the message type counted in type_count */
    u8 proto;
    u8 pad;
    u64 type_count;
    u64 where_cgroup;           /* what top_ctx holds for pid, as far as this slot knows */
    u32 where_netns;
    u32 last_seq;               /* the request last counted (socket, seq): its ACK after a */
    u64 last_sk;                /* data reply, or after a dump's DONE, is not another one */
    u32 last_len;               /* ... but brings the request's length, which a reply lacks */
    u8 last_was_reply;          /* the last counted was answered by a data reply (a GET), */
    u8 acked;                   /* ... and then by an ACK too: that socket's GETs ask for one */
    u8 pad3[2];
    u64 requests;
    u64 errors;
    u64 dumps;
    u64 dump_intr;
    u64 msgs_in;
    u64 msgs_out;
    u64 bytes_in;
    u64 bytes_out;
    u64 lock_wait_ns;
    char comm[16];
};
BPF_PERCPU_ARRAY(top_slots, struct top_slot, 1);

static __always_inline void top_flush_type(struct top_slot *t)
{
    if (!t->type_count)
        return;
    struct top_type_key k = {.pid = t->pid, .type = t->type, .proto = t->proto};
    u64 *n = top_types.lookup(&k);
    if (n)
        __sync_fetch_and_add(n, t->type_count);
    else
        top_types.insert(&k, &t->type_count);
    t->type_count = 0;
}

/* This CPU's slot, made the current process's (flushing whoever had it). */
static __always_inline struct top_slot *top_slot(void)
{
    u32 zero = 0;
    struct top_slot *t = top_slots.lookup(&zero);
    if (!t)
        return 0;
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (t->pid == pid)
        return t;
    if (t->pid) {
        top_flush_type(t);
        u32 old = t->pid;
        struct top_val *v = top.lookup(&old);
        if (!v) {
            struct top_val *z = top_zero.lookup(&zero);
            if (z) {
                __builtin_memcpy(z->comm, t->comm, sizeof(z->comm));
                top.insert(&old, z);
                v = top.lookup(&old);
            }
        }
        if (v) {
            __sync_fetch_and_add(&v->requests, t->requests);
            __sync_fetch_and_add(&v->errors, t->errors);
            __sync_fetch_and_add(&v->dumps, t->dumps);
            __sync_fetch_and_add(&v->dump_intr, t->dump_intr);
            __sync_fetch_and_add(&v->msgs_in, t->msgs_in);
            __sync_fetch_and_add(&v->msgs_out, t->msgs_out);
            __sync_fetch_and_add(&v->bytes_in, t->bytes_in);
            __sync_fetch_and_add(&v->bytes_out, t->bytes_out);
            __sync_fetch_and_add(&v->lock_wait_ns, t->lock_wait_ns);
        }
    }
    __builtin_memset(t, 0, sizeof(*t));
    t->pid = pid;
    bpf_get_current_comm(t->comm, sizeof(t->comm));
    return t;
}

static __always_inline void top_type(struct top_slot *t, u64 sk, u16 type)
{
    u8 proto = *(u16 *)(sk + OFF_SOCK_PROTOCOL);
    if (t->type_count && (t->type != type || t->proto != proto))
        top_flush_type(t);
    t->type = type;
    t->proto = proto;
    t->type_count++;
}

/* A request the kernel answered (an ACK or ERROR echoing it, a dump's DONE, or a
 * lone reply to a GET): counted once, with the type it had. The reply that answers
 * it is queued in the requester's own send, on this CPU, so the slot can tell a
 * reply and the ACK that follows it apart from two requests. */
static __always_inline void top_answered(struct top_slot *t, u64 sk, u32 seq, u16 type,
                                         u16 flags, u32 len)
{
#ifdef FILTER_TYPE
    if (type != FILTER_TYPE)
        return;                 /* --type: only requests of that type count, as elsewhere */
#endif
    if (t->last_sk == sk && t->last_seq == seq) {
        if (!t->last_len) {
            t->bytes_out += len;
            t->last_len = len;
        }
        t->acked = t->last_was_reply;
        return;
    }
    t->last_sk = sk;
    t->last_seq = seq;
    t->last_len = len;
    t->last_was_reply = 0;
    t->requests++;
    t->msgs_out++;
    t->bytes_out += len;
    if ((flags & NLM_F_DUMP) == NLM_F_DUMP)
        t->dumps++;
    top_type(t, sk, type);
}

/* The header of the first message in the buffer of the send the current thread is in
 * (sendto, sendmsg or the first of sendmmsg): 1 if there is one. */
static __always_inline int sent_header(u32 *h)
{
    u64 regs = task_pt_regs_h(bpf_get_current_task_btf());
    if (!regs)
        return 0;
    u64 nr = *(u64 *)(regs + OFF_REGS_ORIG_AX);
    u64 base = *(u64 *)(regs + OFF_REGS_SI);
    if (nr == NR_SENDMSG || nr == NR_SENDMMSG) {
        u64 iov = 0;            /* msg_iov, then its first iovec's base */
        read_user(&iov, sizeof(iov), (void *)(base + 16));
        base = 0;
        read_user(&base, sizeof(base), (void *)iov);
    } else if (nr != NR_SENDTO) {
        return 0;
    }
    return base && !read_user(h, 16, (void *)base);
}

/* Where the process works: top_ctx written when it changes (the cgroup asked for
 * when the slot is new to the process or the netns changed). */
static __always_inline void top_where(struct top_slot *t, u64 sk)
{
    u32 netns = sock_netns(sk);
    if (netns == t->where_netns && t->where_cgroup)
        return;
    u64 cgroup = bpf_get_current_cgroup_id();
    struct top_where where = {.cgroup = cgroup, .netns = netns};
    top_ctx.update(&t->pid, &where);
    t->where_cgroup = cgroup;
    t->where_netns = netns;
}
#endif

/* -------------------------------------------------- lock waits in sends */

/* Lock waits inside a netlink send (its fd looked up once per contended wait:
 * contention is rare) add up in the thread's state; the send's end takes them. */
static __always_inline int sock_contention_begin(u64 lock_addr, u32 flags)
{
    struct task_struct *task = bpf_get_current_task_btf();
    u64 regs = task_pt_regs_h(task);
    if (!regs)
        return 0;
    u64 nr = *(u64 *)(regs + OFF_REGS_ORIG_AX);
    if (nr != NR_SENDMSG && nr != NR_SENDTO && nr != NR_SENDMMSG)
        return 0;
    u8 proto = 0;
    u32 netns = 0;
    /* helper reads: bcc loads this program, so it cannot cast (bpf_rdonly_cast) */
    if (!netlink_sock_of_task_fd((u64)task, (int)*(u64 *)(regs + OFF_REGS_DI), &proto, &netns))
        return 0;
    struct sock_task *s = sock_tasks.task_storage_get(task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (s)
        lock_wait_begin(&s->lk, lock_addr, flags);
    return 0;
}

static __always_inline int sock_contention_end(u64 lock_addr)
{
    struct sock_task *s = sock_tasks.task_storage_get(bpf_get_current_task_btf(), 0, 0);
    u64 wait = s ? lock_wait_end(&s->lk, lock_addr) : 0;
#ifdef MODE_TOP
    struct top_slot *t = wait ? top_slot() : 0;     /* top has no send hook: it counts now */
    if (t)
        t->lock_wait_ns += wait;
#endif
    return 0;
}

/* -------------------------------------------------------------- errors */

#ifdef MODE_ERRORS
/* A request failed: hand over the request as the error echoes it (whole, unless
 * the socket set NETLINK_CAP_ACK: then its header), any error text, and the
 * error, so that userspace pairs them as on the other layers. The request's
 * start is unknown here. */
static __always_inline void errors_failed(void *ctx, u64 sk, u64 data, u32 len)
{
    if (!sock_wanted(sk))
        return;
    u32 zero = 0;
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    u32 h[4] = {};
    if (!e || bpf_probe_read_kernel(h, sizeof(h), (void *)data))
        return;
    u64 now = bpf_ktime_get_ns();
    u32 echo[4] = {};
    if (len >= 36)
        bpf_probe_read_kernel(echo, sizeof(echo), (void *)(data + 20));
#ifdef FILTER_TYPE
    if ((echo[1] & 0xffff) != FILTER_TYPE)
        return;
#endif
    u32 mlen = h[0] < len ? h[0] : len;
    u64 n = (h[1] >> 16) & NLM_F_CAPPED ? NLMSG_HDRLEN : echo[0];
    if (n > mlen - 20)
        n = mlen - 20;
    sock_event(e, sk, EV_MSG, DIR_SEND, now);
    sock_header(e, echo);
    e->flags = EVF_HELD | EVF_NO_START;
    sock_emit_kmem(ctx, e, data + 20, len >= 36 ? n : 0);
    sock_emit_extack(ctx, e, sk, h[2], now);
    sock_event(e, sk, EV_MSG, DIR_RECV, now);
    sock_header(e, h);
    e->flags = EVF_FINAL;
    sock_emit_kmem(ctx, e, data, mlen);
}
#endif

#if defined(MODE_ERRORS) || defined(MODE_TOP)
/* A dump buffer: its parts counted into the socket's dump; at the end of the dump
 * (NLMSG_DONE), errors hands over one that failed or was interrupted, with the
 * request the socket's dump runs for (netlink_sock.cb.nlh, still set). */
#ifdef MODE_TOP
#define TOP_ARG struct top_slot *t
#else
#define TOP_ARG void *t
#endif
static __always_inline void sock_dump(void *ctx, u64 sk, u64 data, u32 len, u32 seq, TOP_ARG)
{
    struct scan *r = scan_dump(data, len);
    if (!r)
        return;
    struct dump_state *d = dumps.lookup(&sk);
    if (!d) {
        struct dump_state z = {.seq = seq};
        dumps.update(&sk, &z);
        d = dumps.lookup(&sk);
        if (!d)
            return;
    }
    if (d->seq != seq) {
        d->seq = seq;
        d->parts = 0;
        d->bytes = 0;
        d->intr = 0;
    }
    d->parts += r->parts;
    d->bytes += r->bytes;
    d->intr |= r->intr ? 1 : 0;
#ifdef MODE_TOP
    t->msgs_in += r->parts + r->done;
    if (r->done) {
        if (r->done_err)
            t->errors++;
        if (d->intr)
            t->dump_intr++;
        /* the dump's request, which the socket's dump runs for */
        u64 nlh = 0;
        u32 rh[4] = {};
        bpf_probe_read_kernel(&nlh, sizeof(nlh), (void *)(sk + OFF_NLSK_CB_NLH));
        if (nlh && !bpf_probe_read_kernel(rh, sizeof(rh), (void *)nlh))
            top_answered(t, sk, seq, rh[1] & 0xffff, rh[1] >> 16, rh[0]);
    }
#endif
    if (!r->done)
        return;
    u64 parts = d->parts, bytes = d->bytes;
    u8 intr = d->intr;
    dumps.delete(&sk);
#ifdef MODE_ERRORS
    if (!r->done_err && !intr)
        return;
    if (!sock_wanted(sk))
        return;
    u32 zero = 0;
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    if (!e)
        return;
    u64 now = bpf_ktime_get_ns();
    u64 nlh = 0;
    bpf_probe_read_kernel(&nlh, sizeof(nlh), (void *)(sk + OFF_NLSK_CB_NLH));
    u32 rh[4] = {};
    if (!nlh || bpf_probe_read_kernel(rh, sizeof(rh), (void *)nlh))
        return;
#ifdef FILTER_TYPE
    if ((rh[1] & 0xffff) != FILTER_TYPE)
        return;
#endif
    sock_event(e, sk, EV_MSG, DIR_SEND, now);
    sock_header(e, rh);
    e->flags = EVF_HELD | EVF_NO_START;
    sock_emit_kmem(ctx, e, nlh, rh[0]);
    sock_emit_extack(ctx, e, sk, seq, now);
    u32 dh[4] = {};
    u64 done = data + r->done_off;
    bpf_probe_read_kernel(dh, sizeof(dh), (void *)done);
    sock_event(e, sk, EV_MSG, DIR_RECV, now);
    sock_header(e, dh);
    e->flags = EVF_FINAL | (intr ? EVF_SKIPPED_INTR : 0);
    e->skipped_parts = parts;
    e->skipped_bytes = bytes;
    sock_emit_kmem(ctx, e, done, r->done_len);
#endif
}
#endif

/* ------------------------------------------------------------ the hooks */

#if defined(MODE_ERRORS) || defined(MODE_TOP)
/* sock:sk_data_ready (tp_btf): a buffer was queued to socket ctx[0]. It is the
 * queue's last (a reader on another CPU may have taken it already: then there
 * is nothing to look at, and nothing is counted). Multicast copies are left
 * alone: only trace shows notifications, and it is not on this layer. */
int sock_ready(u64 *ctx)
{
    u64 sk = ctx[0];
    asm volatile("" : "+r"(sk));        /* plain loads: keep bcc from rewriting them */
    if (*(u16 *)(sk + OFF_SOCK_FAMILY) != AF_NETLINK)
        return 0;
    u64 q = sk + OFF_SOCK_RCVQ;
    u64 skb = *(u64 *)(q + 8);          /* sk_receive_queue.prev */
    if (skb == q)
        return 0;
    if (*(u32 *)(skb + OFF_SKB_CB + OFF_NLCB_DST_GROUP))
        return 0;
    u64 data = *(u64 *)(skb + OFF_SKB_DATA);
    u32 len = *(u32 *)(skb + OFF_SKB_LEN);
    if (len < NLMSG_HDRLEN)
        return 0;
    /* From a process (another socket's port), not the kernel: another process can send
     * anything to a socket's port, an NLMSG_ERROR with the next seq too. No request is
     * answered by it. */
    if (*(u32 *)(skb + OFF_SKB_CB + OFF_NLCB_PORTID)) {
#ifdef MODE_TOP
        if (sock_wanted(sk)) {
            struct top_slot *t = top_slot();
            if (t) {
                t->msgs_in++;
                t->bytes_in += len;
            }
        }
#endif
        return 0;
    }
    u64 h = NLH(data);
    u16 type = NLH_TYPE(h);
    u16 flags = NLH_FLAGS(h);
    u32 seq = NLH_SEQ(h);
    /* an NLMSG_ERROR's error code, and the header of the request it echoes */
    u64 err = NLERR(data + NLMSG_HDRLEN);
    s32 status = type == NLMSG_ERROR && len >= 20 ? NLERR_ERROR(err) : 0;
    int dump = (flags & NLM_F_MULTI) || type == NLMSG_DONE;
#ifdef MODE_TOP
    if (!sock_wanted(sk))
        return 0;
    struct top_slot *t = top_slot();
    if (!t)
        return 0;
    top_where(t, sk);
    t->bytes_in += len;
    if (!dump) {
        t->msgs_in++;
        if (type == NLMSG_ERROR) {
            if (status)
                t->errors++;
            u64 echo = NLERR_MSG(err);
            if (len >= 36)
                top_answered(t, sk, seq, NLH_TYPE(echo), NLH_FLAGS(echo), NLH_LEN(echo));
        } else if (type > NLMSG_DONE) {
            /* A reply to a GET. If this socket's last GET was ACKed too, so will this
             * one be, and the ACK brings its length. Else the request is read where it
             * is: the reply is queued inside the requester's own send, so it is in the
             * buffer that send carries (~60 ns). Failing both (io_uring...), rtnetlink
             * answers RTM_GETx with RTM_NEWx (GET is two above NEW), and the other
             * families with the request's own type. */
            u32 rq[4] = {};
            int ack_next = t->last_sk == sk && t->last_was_reply && t->acked;
            if (!ack_next && sent_header(rq) && rq[2] == seq)
                top_answered(t, sk, seq, rq[1] & 0xffff, rq[1] >> 16, rq[0]);
            else
                top_answered(t, sk, seq, *(u16 *)(sk + OFF_SOCK_PROTOCOL) == 0 && type >= 16
                             && (type & 3) == 0 ? type + 2 : type, NLM_F_REQUEST, 0);
            t->last_was_reply = 1;
            t->acked = 0;
        }
        return 0;
    }
#else
    void *t = 0;
    if (type == NLMSG_ERROR) {
        if (status)
            errors_failed(ctx, sk, data, len);
        return 0;
    }
    if (!dump)
        return 0;               /* a lone reply (to a GET): nothing failed */
#endif
    sock_dump(ctx, sk, data, len, seq, t);
    return 0;
}
#endif

#ifdef MODE_SLOW
/* The call the iterator saw run past SLOW_NS has ended: hand over its request
 * (the first in the sender's buffer), started between long_since and long_seen,
 * and its final reply if the kernel queued one (else a call-end marker), with
 * the lock wait inside it. */
static __always_inline void slow_ended(void *ctx, u64 sk, struct sock_task *s, void *task,
                                       u64 now)
{
    u64 since = s->long_since, seen = s->long_seen;
    s->long_since = 0;
    if (!sock_wanted(sk))
        return;
    u32 zero = 0;
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    u64 regs = task_pt_regs_h(task);
    if (!e || !regs)
        return;
    u64 nr = *(u64 *)(regs + OFF_REGS_ORIG_AX);
    u64 arg = *(u64 *)(regs + OFF_REGS_SI);
    u64 base = arg, avail = *(u64 *)(regs + OFF_REGS_DX);
    if (nr == NR_SENDMSG || nr == NR_SENDMMSG) {
        u64 m[2] = {};
        read_user(m, sizeof(m), (void *)(arg + 16));
        u64 v[2] = {};
        read_user(v, sizeof(v), (void *)m[0]);
        base = v[0];
        avail = v[1];
    } else if (nr != NR_SENDTO) {
        return;
    }
    u32 h[4] = {};
    if (avail < NLMSG_HDRLEN || read_user(h, sizeof(h), (void *)base))
        return;
#ifdef FILTER_TYPE
    if ((h[1] & 0xffff) != FILTER_TYPE)
        return;
#endif
    sock_event(e, sk, EV_MSG, DIR_SEND, since);
    sock_header(e, h);
    e->flags = EVF_HELD;
    e->start_slack_ns = seen - since;
    e->dur_ns = now - since;
    e->lock_wait_ns = s->lk.lock_wait;
    u64 n = h[0] < avail ? h[0] : avail;
    CLAMP(n, SNAPLEN);
    if (read_user(e->data, n, (void *)base))
        n = 0;
    e->cap_len = n;
    emit_event(ctx, e);
    sock_emit_extack(ctx, e, sk, h[2], now);

    /* its final reply: the newest queued buffer that answers this seq */
    u64 q = sk + OFF_SOCK_RCVQ;
    u64 skb = *(u64 *)(q + 8);
    u32 r[4] = {};
    u64 rdata = 0;
    u32 rlen = 0;
#pragma clang loop unroll(disable)
    for (int i = 0; i < REPLY_LOOK; i++) {
        if (skb == q)
            break;
        u64 d = *(u64 *)(skb + OFF_SKB_DATA);
        u32 l = *(u32 *)(skb + OFF_SKB_LEN);
        u32 x[4] = {};
        /* the kernel's (port 0), not a process's message with the same seq */
        if (l >= NLMSG_HDRLEN && !*(u32 *)(skb + OFF_SKB_CB + OFF_NLCB_PORTID)
            && !bpf_probe_read_kernel(x, sizeof(x), (void *)d) && x[2] == h[2]) {
            u16 rt = x[1] & 0xffff;
            if (rt == NLMSG_ERROR || rt == NLMSG_DONE || !((x[1] >> 16) & NLM_F_MULTI)) {
                __builtin_memcpy(r, x, sizeof(r));
                rdata = d;
                rlen = l;
                break;
            }
        }
        skb = *(u64 *)(skb + OFF_SKB_PREV);
    }
    sock_event(e, sk, EV_MSG, DIR_RECV, now);
    e->lock_wait_ns = s->lk.lock_wait;
    e->holder_pid = s->lk.holder_pid;
    __builtin_memcpy(e->holder_comm, s->lk.holder_comm, sizeof(e->holder_comm));
    if (rdata) {
        sock_header(e, r);
        e->flags = EVF_FINAL;
        sock_emit_kmem(ctx, e, rdata, r[0] < rlen ? r[0] : rlen);
    } else {
        sock_header(e, h);
        e->flags = EVF_FINAL | EVF_CALL_END;
        e->cap_len = 0;
        emit_event(ctx, e);
    }
}

/* sock:sock_send_length (tp_btf): a send on socket ctx[0] is done. Only threads
 * the iterator has seen inside a netlink send (or that waited on a lock in one)
 * have state here: for the others, the common case, this is a pointer check
 * (creating or finding a thread's storage, and the precise clock, are ~60 ns
 * each on a small VM; so no clock is read here but for a call being reported). */
int sock_sent(u64 *ctx)
{
    u64 sk = ctx[0];
    asm volatile("" : "+r"(sk));
    if (*(u16 *)(sk + OFF_SOCK_FAMILY) != AF_NETLINK)
        return 0;
    struct task_struct *task = bpf_get_current_task_btf();
    struct sock_task *s = sock_tasks.task_storage_get(task, 0, 0);
    if (!s)
        return 0;
    s->sends++;
    if (s->long_since)
        slow_ended(ctx, sk, s, task, bpf_ktime_get_ns());
    s->lk.lock_wait = 0;
    s->lk.lock_max = 0;
    s->lk.holder_pid = 0;
    return 0;
}
#endif

#ifdef MODE_SLOW
/* ------------------------------------------------------ the slow poller */

/* A thread seen inside a netlink send by the iterator. */
struct polled_val {
    u64 lower;                  /* the call began after this (the look before the first) */
    u64 first_seen;             /* ... and before this (the first look sure it was inside) */
    u64 last_seen;              /* the last pass that saw it inside the kernel */
    u64 sends;                  /* its thread's sends when first seen: another count, another call */
    u64 sk;
    u64 utime;
    u64 stime;
    u64 cgroup;
    u32 pid;
    u32 netns;
    u8 proto;
    u8 syscall;
    u8 confirmed;               /* seen inside the kernel: asleep there, or running kernel code */
    u8 flagged;                 /* its thread knows: this call is reported when it ends */
    u8 said_long;               /* userspace heard it has surely run past SLOW_NS */
    u8 pad[5];
};
BPF_HASH(polled, u32, struct polled_val, 4096);
/* written by the loader before each pass: 0, the previous pass's time */
BPF_ARRAY(poll_clock, u64, 1);

/* A call the iterator watched: an EV_SPAN (slow lists them as "meanwhile"). */
static __always_inline void poll_span(void *ctx, u64 task, struct polled_val *p,
                                      struct sock_task *s, u8 flags)
{
    u32 zero = 0;
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    if (!e)
        return;
    e->kind = EV_SPAN;
    e->dir = DIR_SEND;
    e->peer_portid = 0;
    e->peer_pid = 0;
    e->groups = 0;
    e->ts_ns = p->lower;
    e->dur_ns = p->last_seen - p->lower;
    e->start_slack_ns = p->first_seen - p->lower;
    e->sk = p->sk;
    e->pid = p->pid;
    e->tid = *(u32 *)(task + OFF_TASK_PID);
    e->syscall = p->syscall;
    e->flags = flags;
    e->cap_len = 0;
    e->proto = p->proto;
    e->netns = p->netns;
    e->cgroup = p->cgroup;
    e->portid = 0;
    e->lock_wait_ns = 0;
    e->holder_pid = 0;
    if (s) {
        /* a wait still going on counts, and its lock's owner is the one to name */
        e->lock_wait_ns = s->lk.lock_wait + (s->lk.lock_begin ? p->last_seen - s->lk.lock_begin : 0);
        e->holder_pid = s->lk.lock_begin ? s->lk.cur_holder_pid : s->lk.holder_pid;
        if (s->lk.lock_begin)
            __builtin_memcpy(e->holder_comm, s->lk.cur_holder_comm, sizeof(e->holder_comm));
        else
            __builtin_memcpy(e->holder_comm, s->lk.holder_comm, sizeof(e->holder_comm));
    }
    bpf_probe_read_kernel(e->comm, sizeof(e->comm), (void *)(task + OFF_TASK_COMM));
    emit_event(ctx, e);
}

/* iter/task: run over every thread at each pass. A netlink send that a thread is
 * inside at two passes, with no send of its ended between them, is one call; it
 * began after the pass before the first that saw it. Past SLOW_NS, the thread is told to report it
 * when it ends (sock_sent), and userspace hears that it is still running. */
int slow_poll(u64 *ctx)
{
    u64 task = ctx[1];
    asm volatile("" : "+r"(task));
    if (!task)
        return 0;
    if (*(u32 *)(task + OFF_TASK_FLAGS) & PF_KTHREAD)
        return 0;
    u32 tid = *(u32 *)(task + OFF_TASK_PID);
    struct polled_val *p = polled.lookup(&tid);
    u64 regs = task_pt_regs_h((void *)task);
    u8 sc = 0, proto = 0;
    u32 netns = 0;
    u64 sk = 0;
    if (regs) {
        u64 nr = *(u64 *)(regs + OFF_REGS_ORIG_AX);
        sc = nr == NR_SENDMSG ? SC_SENDMSG : nr == NR_SENDTO ? SC_SENDTO
           : nr == NR_SENDMMSG ? SC_SENDMMSG : 0;
        if (!sc && !p)
            return 0;           /* most threads: not in a send, nothing watched */
        if (sc)
            sk = netlink_sock_of_task_fd_btf(task, (int)*(u64 *)(regs + OFF_REGS_DI), &proto,
                                             &netns);
    }
    /* a thread inside a netlink send gets state, so that the send's end counts in it */
    struct sock_task *s = sock_tasks.task_storage_get((void *)task, 0,
                                                      sk ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
    u64 sends = s ? s->sends : 0;
    if (p && (!sk || p->sends != sends || p->sk != sk || p->syscall != sc)) {
        if (p->confirmed)
            poll_span(ctx, task, p, 0, 0);      /* that call is over */
        polled.delete(&tid);
        p = 0;
    }
    if (!sk)
        return 0;
    u64 now = bpf_ktime_get_ns();
    u32 state = *(u32 *)(task + OFF_TASK_STATE);
    u64 ut = *(u64 *)(task + OFF_TASK_UTIME);
    u64 st = *(u64 *)(task + OFF_TASK_STIME);
    if (!p) {
        u32 zero = 0;
        u64 *prev = poll_clock.lookup(&zero);
        u64 lower = prev ? *prev : 0;
        struct polled_val v = {.lower = lower, .first_seen = now, .last_seen = now,
                               .sends = sends, .sk = sk, .utime = ut, .stime = st,
                               .cgroup = task_cgroup_id(task),
                               .pid = *(u32 *)(task + OFF_TASK_TGID), .netns = netns,
                               .proto = proto, .syscall = sc, .confirmed = state != 0};
        polled.update(&tid, &v);
        if (v.confirmed)
            poll_span(ctx, task, &v, s, EVF_IN_PROGRESS);      /* slow: busy meanwhile */
        return 0;
    }
    /* asleep in the kernel, or on a CPU running kernel code (system time grew, user
     * time did not); a thread that ran neither way since the last pass tells nothing */
    int in_kernel = state != 0 || (st > p->stime && ut == p->utime);
    p->utime = ut;
    p->stime = st;
    if (!in_kernel)
        return 0;
    u8 news = !p->confirmed;
    if (news)
        p->first_seen = now;    /* an earlier look may have seen a stale syscall number */
    p->confirmed = 1;
    p->last_seen = now;
    /* it may have run past the threshold (it began after `lower`): reported when it
     * ends, where userspace keeps it only if it surely did, and counts it otherwise */
    if (!p->flagged && s && now - p->lower >= SLOW_NS) {
        p->flagged = 1;
        s->long_since = p->lower;
        s->long_seen = p->first_seen;
    }
    /* userspace hears of a call when it is first known to be one, and again when it has
     * surely run past the threshold (slow prints those while they still run) */
    if (!p->said_long && now - p->first_seen >= SLOW_NS) {
        p->said_long = 1;
        news = 1;
    }
    if (news)
        poll_span(ctx, task, p, s, EVF_IN_PROGRESS);
    return 0;
}
#endif

#endif /* the layers */

/* ------------------------------------------------ extack and lock waits */

#if !defined(MODE_TOP) && !defined(NO_EXTACK)
TRACEPOINT_PROBE(netlink, netlink_extack)
{
#ifdef SOCK_LAYER
    return sock_extack((void *)args + (args->data_loc_msg & 0xffff));
#else
    return on_extack_text(args, (void *)args + (args->data_loc_msg & 0xffff));
#endif
}
#endif

#ifndef NO_LOCKS
TRACEPOINT_PROBE(lock, contention_begin)
{
#ifdef SOCK_LAYER
    return sock_contention_begin((u64)args->lock_addr, args->flags);
#else
    return on_contention_begin((u64)args->lock_addr, args->flags);
#endif
}

TRACEPOINT_PROBE(lock, contention_end)
{
#ifdef SOCK_LAYER
    return sock_contention_end((u64)args->lock_addr);
#else
    return on_contention_end((u64)args->lock_addr);
#endif
}
#endif
