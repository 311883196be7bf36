// SPDX-License-Identifier: GPL-2.0
/* Walking a buffer's netlink messages: iovecs, split headers, padding,
 * dump-part chunks. The syscall layer walks user memory; the kernel layer an skb. */
#ifndef NLBPF_WALK_BPF_H
#define NLBPF_WALK_BPF_H

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
    e->holder_work = 0;
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

#endif /* NLBPF_WALK_BPF_H */
