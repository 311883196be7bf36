// SPDX-License-Identifier: GPL-2.0
/* Per message: what a request and a reply do in each mode (trace, errors,
 * slow, top), and which reply is the final one. */
#ifndef NLBPF_MESSAGE_BPF_H
#define NLBPF_MESSAGE_BPF_H

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
#ifdef MODE_ERRORS
    /* a change of another type is kept still: it may be what interrupts a dump */
    if (e->nl_type != FILTER_TYPE && !is_change(w->c.proto, e->nl_type))
#else
    if (e->nl_type != FILTER_TYPE)
#endif
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
            v->holder_work = 0;
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
#if defined(MODE_ERRORS) && defined(KERNEL_LAYER)
        /* a change the kernel made on its own (no request's handler ran: a netns torn
         * down, a carrier lost), told by its notification, while dumps ran in its netns:
         * it may be what interrupted one of them */
        if (w->groups && !(w->eflags & EVF_IN_HANDLER) && is_change(w->c.proto, e->nl_type)
            && dump_recent(w->c.netns, w->now))
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
#ifdef MODE_ERRORS
        dump_mark(w->c.netns, w->now);
#endif
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
    e->holder_work = p->holder_work;
    __builtin_memcpy(e->holder_comm, p->holder_comm, sizeof(e->holder_comm));

#ifdef MODE_TOP
    u32 b = lat_bucket(latency);
    if (status)
        top_count_errno(w->c.pid, w->c.proto, p->type, status);
    type_hist_add(w->c.proto, p->type, latency, b, p->lock_wait);
    if (t) {
        if (status)
            __sync_fetch_and_add(&t->errors, 1);
        if (intr)
            __sync_fetch_and_add(&t->dump_intr, 1);
        __sync_fetch_and_add(&t->lat_count, 1);
        __sync_fetch_and_add(&t->lat_sum_ns, latency);
        __sync_fetch_and_add(&t->lock_wait_ns, p->lock_wait);
        u32 zero = 0;
        u64 *epoch = top_epoch.lookup(&zero);
        u64 now_epoch = epoch ? *epoch : 0;
        if (t->lat_max_epoch != now_epoch) {
            t->lat_max_epoch = now_epoch;
            t->lat_max_ns = latency;
        } else if (latency > t->lat_max_ns) {
            t->lat_max_ns = latency;
        }
        if (b < LAT_BUCKETS)
            __sync_fetch_and_add(&t->lat_hist[b], 1);
    }
#endif

#if defined(MODE_ERRORS) || defined(MODE_SLOW)
#ifdef MODE_ERRORS
    int wanted = status != 0 || intr;
#ifdef FILTER_TYPE
    if (p->type != FILTER_TYPE)
        wanted = 0;
#endif
#ifdef FILTER_IGNORE
    if (status && !intr && ignored(w->c.proto, p->type, status))
        wanted = 0;
#endif
    /* a change that succeeded while dumps ran in its netns: it may be what interrupted
     * one of them, which userspace names with it */
    if (!status && !intr && is_change(w->c.proto, p->type) && dump_recent(w->c.netns, w->now))
        wanted = 1;
#else
    int wanted = latency >= SLOW_NS;
    /* the thread's next requests after a slow one go too (nlbpf.h, AFTER_SLOW_*) */
    u32 tid = (u32)bpf_get_current_pid_tgid();
    if (wanted) {
        struct after_slow_val a = {.until = w->now + AFTER_SLOW_NS, .left = AFTER_SLOW_COUNT};
        after_slow.update(&tid, &a);
    } else {
        struct after_slow_val *a = after_slow.lookup(&tid);
        if (a) {
            if (w->now < a->until && a->left) {
                wanted = 1;
                a->left--;
            }
            if (!a->left || w->now >= a->until)
                after_slow.delete(&tid);
        }
    }
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

#endif /* NLBPF_MESSAGE_BPF_H */
