// SPDX-License-Identifier: GPL-2.0
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

#include "base.bpf.h"
#include "maps.bpf.h"
#include "pairing.bpf.h"
#include "socket.bpf.h"
#include "filters.bpf.h"
#include "emit.bpf.h"
#include "message.bpf.h"
#include "walk.bpf.h"
#include "waits.bpf.h"

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
    u64 after_slow;             /* slow: a call was reported; the next ones go too, until then */
    u64 after_left;             /* ... this many of them (nlbpf.h, AFTER_SLOW_*) */
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
    clear_extras(e);
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
    u64 first_ts;               /* its first buffer was queued (within its request's send) */
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

#if defined(MODE_ERRORS) || defined(MODE_TOP)
/* Where the first message is in the buffer of the send the current thread is in
 * (sendto, sendmsg or the first of sendmmsg): a user address, or 0. */
static __always_inline u64 sent_buffer(void)
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
    return base;
}

/* ... and that message's header: 1 if there is one. */
static __always_inline int sent_header(u32 *h)
{
    u64 base = sent_buffer();
    return base && !read_user(h, 16, (void *)base);
}
#endif

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
#ifdef FILTER_IGNORE
    s32 err = 0;
    bpf_probe_read_kernel(&err, sizeof(err), (void *)(data + 16));
    if (ignored(*(u16 *)(sk + OFF_SOCK_PROTOCOL), echo[1] & 0xffff, err))
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

/* How much of a change's request is handed over: enough for its object's name. */
#define CHANGE_SNAP (SNAPLEN < 256 ? SNAPLEN : 256)

/* A request was acknowledged (an NLMSG_ERROR with error 0): if it changed a table
 * while dumps ran in its netns, hand it over with its ACK (userspace names it beside
 * a dump it interrupted). An ACK echoes the request's header only, but it is queued
 * inside the requester's own send, so the request is read from that send's buffer,
 * when the first message there is the one acknowledged. */
static __always_inline void errors_changed(void *ctx, u64 sk, u64 data, u32 len)
{
    if (len < 36)
        return;
    u32 echo[4] = {};
    if (bpf_probe_read_kernel(echo, sizeof(echo), (void *)(data + 20)))
        return;
    u64 now = bpf_ktime_get_ns();
    if (!is_change(*(u16 *)(sk + OFF_SOCK_PROTOCOL), echo[1] & 0xffff)
        || !dump_recent(sock_netns(sk), now) || !sock_wanted(sk))
        return;
    u32 zero = 0;
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    u32 h[4] = {};
    if (!e || bpf_probe_read_kernel(h, sizeof(h), (void *)data))
        return;
    sock_event(e, sk, EV_MSG, DIR_SEND, now);
    sock_header(e, echo);
    e->flags = EVF_HELD | EVF_NO_START;
    u64 base = sent_buffer();
    u32 rq[4] = {};
    u64 n = echo[0];
    CLAMP(n, CHANGE_SNAP);
    if (base && !read_user(rq, sizeof(rq), (void *)base) && rq[2] == echo[2]
        && rq[1] == echo[1] && n >= NLMSG_HDRLEN && !read_user(e->data, n, (void *)base)) {
        e->cap_len = n;
    } else {
        __builtin_memcpy(e->data, echo, sizeof(echo));
        e->cap_len = NLMSG_HDRLEN;
    }
    emit_event(ctx, e);
    sock_event(e, sk, EV_MSG, DIR_RECV, now);
    sock_header(e, h);
    e->flags = EVF_FINAL;
    sock_emit_kmem(ctx, e, data, 36);
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
    if (d->seq != seq || !d->first_ts) {
        d->seq = seq;
        d->parts = 0;
        d->bytes = 0;
        d->intr = 0;
        d->first_ts = bpf_ktime_get_ns();
    }
#ifdef MODE_ERRORS
    dump_mark(sock_netns(sk), bpf_ktime_get_ns());
#endif
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
        if (nlh && !bpf_probe_read_kernel(rh, sizeof(rh), (void *)nlh)) {
            top_answered(t, sk, seq, rh[1] & 0xffff, rh[1] >> 16, rh[0]);
            if (r->done_err)
                top_count_errno(t->pid, *(u16 *)(sk + OFF_SOCK_PROTOCOL), rh[1] & 0xffff,
                                r->done_err);
        }
    }
#endif
    if (!r->done)
        return;
    u64 parts = d->parts, bytes = d->bytes, first_ts = d->first_ts;
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
#ifdef FILTER_IGNORE
    if (!intr && ignored(*(u16 *)(sk + OFF_SOCK_PROTOCOL), rh[1] & 0xffff, r->done_err))
        return;
#endif
    /* its start is not known, but its first part was queued just after it */
    sock_event(e, sk, EV_MSG, DIR_SEND, first_ts ? first_ts : now);
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
            u64 echo = NLERR_MSG(err);
            if (status) {
                t->errors++;
                if (len >= 36)
                    top_count_errno(t->pid, *(u16 *)(sk + OFF_SOCK_PROTOCOL), NLH_TYPE(echo),
                                    status);
            }
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
        else
            errors_changed(ctx, sk, data, len);
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
                                       u64 now, int after)
{
    u64 since = s->long_since, seen = s->long_seen;
    s->long_since = 0;
    if (after)                  /* the call after a slow one: its start is not known */
        since = seen = now;
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
    e->flags = after ? EVF_HELD | EVF_NO_START : EVF_HELD;
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
    e->holder_work = s->lk.holder_work;
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
    if (s->long_since) {
        u64 now = bpf_ktime_get_ns();
        slow_ended(ctx, sk, s, task, now, 0);
        s->after_slow = now + AFTER_SLOW_NS;
        s->after_left = AFTER_SLOW_COUNT;
    } else if (s->after_slow) {
        /* the thread's next requests after a slow one (nlbpf.h) */
        u64 now = bpf_ktime_get_ns();
        if (now < s->after_slow && s->after_left) {
            slow_ended(ctx, sk, s, task, now, 1);
            s->after_left--;
        }
        if (!s->after_left || now >= s->after_slow)
            s->after_slow = 0;
    }
    s->lk.lock_wait = 0;
    s->lk.lock_max = 0;
    s->lk.holder_pid = 0;
    s->lk.holder_work = 0;
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
    e->holder_work = 0;
    if (s) {
        /* a wait still going on counts, and its lock's owner is the one to name */
        e->lock_wait_ns = s->lk.lock_wait + (s->lk.lock_begin ? p->last_seen - s->lk.lock_begin : 0);
        e->holder_pid = s->lk.lock_begin ? s->lk.cur_holder_pid : s->lk.holder_pid;
        e->holder_work = s->lk.lock_begin ? s->lk.cur_holder_work : s->lk.holder_work;
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

#include "tracepoints.bpf.h"
