// SPDX-License-Identifier: GPL-2.0
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

#include "base.bpf.h"
#include "maps.bpf.h"
#include "pairing.bpf.h"
#include "socket.bpf.h"
#include "filters.bpf.h"
#include "emit.bpf.h"
#include "message.bpf.h"
#include "walk.bpf.h"
#include "waits.bpf.h"

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
#if defined(MODE_TRACE) || defined(MODE_ERRORS)
    /* a process may multicast too (NETLINK_USERSOCK, or with CAP_NET_ADMIN): its send is
     * seen as such (on_unicast, which netlink_sendmsg calls as well), not as a
     * notification from the kernel */
    if (is_kernel_sock(ssk) == 0)
        return 0;
    struct call *c = call_get();
    u8 eflags = (c && c->arg_ptr == MARK_HANDLER) ? EVF_IN_HANDLER : 0;
#ifdef MODE_ERRORS
    /* errors: only what the kernel changed on its own (on_reply says which) */
    if (eflags)
        return 0;
#endif
    return kwalk(ctx, ssk, skb, DIR_RECV, group ? group : 0xffffffff, eflags, 0, 0);
#else
    /* Only trace (and errors, the kernel's own changes) shows notifications. And a broadcast is seen here where it is sent,
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

#ifdef MODE_SLOW
/* slow's "meanwhile": a request handler that ran SPAN_MIN_NS or more, handed over as
 * the syscall layer hands over each long netlink call (rtnl is taken inside handlers:
 * these are the calls that hold it, or wait for it). */
static __always_inline void handler_span(void *ctx, struct call *c, u64 dur)
{
    u32 zero = 0;
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    if (!e)
        return;
    e->kind = EV_SPAN;
    e->dir = DIR_SEND;
    e->ts_ns = c->ts;
    e->dur_ns = dur;
    e->sk = c->sk;
    e->cgroup = c->cgroup;
    e->pid = c->pid;
    e->tid = (u32)bpf_get_current_pid_tgid();
    e->netns = c->netns;
    e->proto = c->proto;
    e->syscall = SC_KERNEL;
    e->portid = 0;
    e->groups = 0;
    e->ret = 0;
    clear_extras(e);
    e->peer_portid = 0;
    e->peer_pid = 0;
    e->nl_len = 0;
    e->nl_seq = (u32)c->arg_len;
    e->nl_type = 0;
    e->nl_flags = 0;
    e->cap_len = 0;
    e->lock_wait_ns = c->lk.lock_wait;
    e->holder_pid = c->lk.holder_pid;
    e->holder_work = c->lk.holder_work;
    __builtin_memcpy(e->holder_comm, c->lk.holder_comm, sizeof(e->holder_comm));
    __builtin_memcpy(e->comm, c->comm, sizeof(e->comm));
    emit_event(ctx, e);
}
#endif

static __always_inline int on_handler_exit(void *ctx)
{
    struct call *c = call_get();
    if (!c || c->arg_ptr != MARK_HANDLER)
        return 0;
    u64 dur = bpf_ktime_get_ns() - c->ts;
    charge(c, c->sk, (u32)c->arg_len, dur, 0);
#ifdef MODE_SLOW
    if (dur >= SPAN_MIN_NS)             /* (the call is there only if the filters keep it) */
        handler_span(ctx, c, dur);
#endif
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
    return on_handler_exit(ctx);
}
#endif
#ifdef HOOK_GENL_RCV
KFUNC_PROBE(genl_rcv_msg, void *skb, void *nlh, void *extack)
{
    return on_handler_enter((u64)skb, (u64)nlh);
}
KRETFUNC_PROBE(genl_rcv_msg, void *skb, void *nlh, void *extack, int ret)
{
    return on_handler_exit(ctx);
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
    return on_handler_exit(ctx);
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

#include "tracepoints.bpf.h"
