// SPDX-License-Identifier: GPL-2.0
/* What the user asked to see (--pid, --comm, --cgroup, --proto, --netns):
 * tested in the kernel, before anything is read or handed over. */
#ifndef NLBPF_FILTERS_BPF_H
#define NLBPF_FILTERS_BPF_H

#ifdef FILTER_COMM
static __always_inline int comm_matches(const char *comm)
{
    const char want[] = FILTER_COMM;
#pragma unroll
    for (int i = 0; i < 16 && i < sizeof(want); i++) {
        if (comm[i] != want[i])
            return 0;
        if (want[i] == 0)
            return 1;
    }
    return 1;
}
#endif


#ifdef FILTER_CGROUP_TREE
/* --cgroup / --container: slot 0 holds the cgroup v2 directory (set by the loader);
 * a task passes if it is in that cgroup or below it. */
BPF_CGROUP_ARRAY(cgroup_filter, 1);
#endif
#ifdef MODE_TOP
/* pid -> cgroup and netns of its latest netlink call, for top --by container|netns */
struct top_where {
    u64 cgroup;
    u32 netns;
    u32 pad;
};
BPF_HASH(top_ctx, u32, struct top_where, 10240);
#endif

#ifdef FILTER_FOLLOW
/* `nlbpf trace -- CMD`: the command's process and every process it forks, added as
 * they are forked (sched_process_fork, tracepoints.bpf.h) and removed as they exit.
 * The loader puts the command's pid in before the command runs. */
#ifndef FOLLOW_MAX
#define FOLLOW_MAX 32768
#endif
BPF_HASH(follow, u32, u8, FOLLOW_MAX);
#endif

#ifdef FILTER_IGNORE
BPF_HASH(ignores, struct ignore_key, u64, 1024);       /* -> failures it dropped */

/* Is this failure one the user said to ignore? Counted in its rule if so. */
static __always_inline int ignored(u8 proto, u16 type, s32 err)
{
    struct ignore_key k = {.err = err, .type = type, .proto = proto};
    u64 *n = ignores.lookup(&k);
    if (!n) {
        k.err = 0;                              /* TYPE: any errno */
        n = ignores.lookup(&k);
    }
    if (!n) {
        k.err = err;                            /* :ERRNO: any type */
        k.type = IGNORE_ANY_TYPE;
        k.proto = IGNORE_ANY_PROTO;
        n = ignores.lookup(&k);
    }
    if (!n)
        return 0;
    __sync_fetch_and_add(n, 1);
    return 1;
}
#endif

/* Do the filters on the task (process, cgroup) keep what the current thread does? */
static __always_inline int task_wanted(u32 pid)
{
#ifdef SELF_PID
    if (pid == SELF_PID)        /* nlbpf's own lookups (genl families) are not news */
        return 0;
#endif
#ifdef FILTER_PID
    if (pid != FILTER_PID)
        return 0;
#endif
#ifdef FILTER_CGROUP
    if (bpf_get_current_cgroup_id() != FILTER_CGROUP)
        return 0;
#endif
#ifdef FILTER_CGROUP_TREE
    if (cgroup_filter.check_current_task(0) != 1)
        return 0;               /* not below it, or the slot is empty (error < 0) */
#endif
#ifdef FILTER_FOLLOW
    if (!follow.lookup(&pid))
        return 0;
#endif
    return 1;
}

/* Fill who/where for a call on netlink socket sk; 0 if the filters drop it. */
static __always_inline int fill_call(struct call *c, u64 sk, u8 proto, u32 netns)
{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (!task_wanted(pid))
        return 0;
#ifdef FILTER_PROTO
    if (proto != FILTER_PROTO)
        return 0;
#endif
#ifdef FILTER_NETNS
    if (netns != FILTER_NETNS)
        return 0;
#endif
    bpf_get_current_comm(&c->comm, sizeof(c->comm));
#ifdef FILTER_COMM
    if (!comm_matches(c->comm))
        return 0;
#endif
    c->sk = sk;
    c->proto = proto;
    c->netns = netns;
    c->ts = bpf_ktime_get_ns();
    c->pid = pid;
    c->cgroup = bpf_get_current_cgroup_id();
#ifdef MODE_TOP
    /* written only when it changes: a lookup is cheaper than an update per call */
    struct top_where *was = top_ctx.lookup(&pid);
    if (!was || was->cgroup != c->cgroup || was->netns != netns) {
        struct top_where where = {.cgroup = c->cgroup, .netns = netns};
        top_ctx.update(&pid, &where);
    }
#endif
    return 1;
}

/* Common syscall entry: is this a netlink call we want? Remember it if so. */
static __always_inline int enter_call(int fd, u8 syscall, u8 dir, u64 arg_ptr, u64 arg_len,
                                      u64 addr_ptr, u32 addr_len)
{
#ifdef FILTER_PID
    if ((bpf_get_current_pid_tgid() >> 32) != FILTER_PID)
        return 0;               /* cheap early exit before the fd lookup */
#endif
    struct call c = {};
    u8 proto = 0;
    u32 netns = 0;
    u64 sk = netlink_sock_of_fd(fd, &proto, &netns);
    if (!sk || !fill_call(&c, sk, proto, netns))
        return 0;
    c.syscall = syscall;
    c.dir = dir;
    c.arg_ptr = arg_ptr;
    c.arg_len = arg_len;
    c.addr_ptr = addr_ptr;
    c.addr_len = addr_len;
    call_put(&c);
    return 0;
}

#endif /* NLBPF_FILTERS_BPF_H */
