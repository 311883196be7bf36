// SPDX-License-Identifier: GPL-2.0
/* Pairing in the kernel: each request waits in a hot slot or the LRU until
 * its final reply (the rule is in message.bpf.h). */
#ifndef NLBPF_PAIRING_BPF_H
#define NLBPF_PAIRING_BPF_H

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
        p->holder_work = lk->holder_work;
        __builtin_memcpy(p->holder_comm, lk->holder_comm, sizeof(p->holder_comm));
    }
}

#endif /* NLBPF_PAIRING_BPF_H */
