// SPDX-License-Identifier: GPL-2.0
/* The extack and lock tracepoints, attached on every layer. */
#ifndef NLBPF_TRACEPOINTS_BPF_H
#define NLBPF_TRACEPOINTS_BPF_H

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

#endif /* NLBPF_TRACEPOINTS_BPF_H */
