// SPDX-License-Identifier: GPL-2.0
/* The maps every layer shares: the event buffer, counters, the call in
 * progress per thread, the walk's state, the pending requests, top's tables. */
#ifndef NLBPF_MAPS_BPF_H
#define NLBPF_MAPS_BPF_H

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
    u64 holder_work;            /* a kworker owner's work function (waits.bpf.h) */
    u64 cur_holder_work;
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
    u64 holder_work;
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
/* top's interval number, advanced by the reader at each refresh: a latency maximum
 * set in an earlier interval is started afresh, so MAX is per interval like the rest */
BPF_ARRAY(top_epoch, u64, 1);
#ifdef COUNT_ERRNO
BPF_HASH(top_errs, struct top_err_key, u64, 16384);
#endif
#ifdef TYPE_HIST
BPF_HASH(type_hists, struct type_key, struct type_hist, 2048);
BPF_PERCPU_ARRAY(type_zero, struct type_hist, 1);
#endif
#endif

#ifdef MODE_SLOW
BPF_HASH(after_slow, u32, struct after_slow_val, 4096);     /* tid -> its next requests go too */
#endif

#ifdef MODE_ERRORS
/* errors names who changed a table while a dump of it ran (the dumps the kernel marks
 * NLM_F_DUMP_INTR). A change that succeeded is handed over only while dumps run in its
 * network namespace: netns -> when a dump's part was last queued there. */
#define DUMP_RECENT_NS (5ULL * 1000000000ULL)
BPF_HASH(dumps_lately, u32, u64, 4096);
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

#ifdef MODE_ERRORS
/* A dump's part was queued in netns now (written at most once a millisecond). */
static __always_inline void dump_mark(u32 netns, u64 now)
{
    u64 *was = dumps_lately.lookup(&netns);
    if (was && now - *was < 1000000)
        return;
    dumps_lately.update(&netns, &now);
}

static __always_inline int dump_recent(u32 netns, u64 now)
{
    u64 *was = dumps_lately.lookup(&netns);
    return was && now - *was < DUMP_RECENT_NS;
}

/* A request that changes a table a dump may be walking (nlbpf.h says which). */
static __always_inline int is_change(u8 proto, u16 type)
{
    if (proto == 0)
        return type >= RTM_BASE && (type & 3) != RTM_GET_OFFSET;
    if (proto == 12 && (type >> 8) == NFNL_SUBSYS_NFTABLES) {
        u16 t = type & 0xff;
        return t < 64 && !((NFT_NOT_CHANGES >> t) & 1);
    }
    return 0;
}
#endif

#endif /* NLBPF_MAPS_BPF_H */
