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

/* ------------------------------------------------ the command's processes */

#ifdef FILTER_FOLLOW
/* A process the command made forks: follow the child too. Runs in the parent. A new
 * thread comes here as well (its tid is added and goes at its exit): the tracepoint
 * does not say which it is, and a tid is never another process's tgid meanwhile. */
TRACEPOINT_PROBE(sched, sched_process_fork)
{
    u32 parent = bpf_get_current_pid_tgid() >> 32;
    if (!follow.lookup(&parent))
        return 0;
    u32 child = args->child_pid;
    u8 yes = 1;
    if (follow.insert(&child, &yes) == -E2BIG)
        stat_inc(ST_FOLLOW_FULL);       /* the table is full: said, not silently missed */
    return 0;
}

/* A thread exits: its tid goes (a process's own tid is its tgid), so that a pid the
 * kernel hands out again later is not taken for the command's. */
TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    follow.delete(&tid);
    return 0;
}
#endif

#endif /* NLBPF_TRACEPOINTS_BPF_H */
