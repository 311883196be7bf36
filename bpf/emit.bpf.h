// SPDX-License-Identifier: GPL-2.0
/* Handing events over: the common fields, ring or perf buffer, top's counters. */
#ifndef NLBPF_EMIT_BPF_H
#define NLBPF_EMIT_BPF_H

/* The fields only some events carry, cleared: the per-CPU scratch event is reused. */
static __always_inline void clear_extras(struct nl_event *e)
{
    e->flags = 0;
    e->lock_wait_ns = 0;
    e->holder_pid = 0;
    e->holder_work = 0;
    e->skipped_parts = 0;
    e->skipped_bytes = 0;
    e->handler_ns = 0;
    e->dump_ns = 0;
    e->start_slack_ns = 0;
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
    clear_extras(e);
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

/* log2 bucket with one extra bit of precision, for the top histograms: bucket
 * 2*lg + (the bit below the top one). Without a branch: each step tests whether the
 * upper half is nonzero by carrying into the bit above it. (The if-chain it replaces
 * gave the verifier 2^6 paths per call, and with serve's per-type histograms the
 * syscall layer's walk went past its budget.) */
_Static_assert((LAT_BUCKETS & (LAT_BUCKETS - 1)) == 0, "lat_bucket masks with LAT_BUCKETS - 1");
static __always_inline u32 lat_bucket(u64 v)
{
    u64 x = v, lg = 0, s;
    s = ((x >> 32) + 0xffffffffULL) >> 32 << 5; x >>= s; lg += s;
    s = ((x >> 16) + 0xffffULL) >> 16 << 4; x >>= s; lg += s;
    s = ((x >> 8) + 0xffULL) >> 8 << 3; x >>= s; lg += s;
    s = ((x >> 4) + 0xfULL) >> 4 << 2; x >>= s; lg += s;
    s = ((x >> 2) + 0x3ULL) >> 2 << 1; x >>= s; lg += s;
    lg += x >> 1;
    u64 half = ((v << 1) >> lg) & 1;       /* lg 0: v is 0 or 1, and half 0 */
    u64 b = lg * 2 + half;
    /* At most 127; the mask says so to the verifier (clang drops callers' checks).
     * The barrier keeps the mask after the sum: clang would otherwise mask each
     * term and join them with an OR, and 6.1's verifier knows nothing of an OR of
     * two unknown registers, however bounded each is. */
    asm volatile("" : "+r"(b));
    return (u32)b & (LAT_BUCKETS - 1);
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

/* serve: a failed request, by process, protocol, type and errno */
static __always_inline void top_count_errno(u32 pid, u8 proto, u16 type, s32 err)
{
#ifdef COUNT_ERRNO
    struct top_err_key k = {.pid = pid, .type = type, .proto = proto, .err = err};
    u64 one = 1;
    u64 *n = top_errs.lookup(&k);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        top_errs.insert(&k, &one);
#endif
}

/* serve: a request's latency (lat_b: its bucket, which top's per-process histogram
 * takes too: worked out once, the walk stays within the verifier's budget) and lock
 * wait, by protocol and type */
static __always_inline void type_hist_add(u8 proto, u16 type, u64 latency, u32 lat_b,
                                          u64 lock_wait)
{
#ifdef TYPE_HIST
    struct type_key k = {.type = type, .proto = proto};
    struct type_hist *h = type_hists.lookup(&k);
    if (!h) {
        u32 zero = 0;
        struct type_hist *z = type_zero.lookup(&zero);
        if (!z)
            return;
        type_hists.insert(&k, z);
        h = type_hists.lookup(&k);
        if (!h)
            return;
    }
    __sync_fetch_and_add(&h->count, 1);
    __sync_fetch_and_add(&h->lat_sum_ns, latency);
    __sync_fetch_and_add(&h->lock_sum_ns, lock_wait);
    if (lat_b < LAT_BUCKETS)
        __sync_fetch_and_add(&h->lat_hist[lat_b], 1);
    u32 b = lock_wait ? lat_bucket(lock_wait) : 0;
    if (b < LAT_BUCKETS)
        __sync_fetch_and_add(&h->lock_hist[b], 1);
#endif
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

#endif /* NLBPF_EMIT_BPF_H */
