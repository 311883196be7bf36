// SPDX-License-Identifier: GPL-2.0
/* =========================================================================
 * Syscall layer: netlink traffic as processes send and receive it.
 *
 * sys_enter_* resolves fd -> netlink socket (through BTF offsets, so dup'ed
 * and inherited fds count) and remembers the call; sys_exit_* sets up a walk
 * over the user buffers and tail-calls walk(), which handles WALK_CHUNK steps
 * per run and re-enters itself.
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
        e->holder_work = w->c.lk.holder_work;
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


#include "tracepoints.bpf.h"
