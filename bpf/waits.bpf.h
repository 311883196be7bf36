// SPDX-License-Identifier: GPL-2.0
/* The kernel's extack text and the lock waits inside a request. */
#ifndef NLBPF_WAITS_BPF_H
#define NLBPF_WAITS_BPF_H

/* ------------------------------------------------ extack and lock waits */

/* The kernel's error text, even for sockets that did not ask for extended acks. */
static __always_inline int on_extack_text(void *ctx, const void *text)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct call *c = call_get();
    if (!c)
        return 0;
    u32 zero = 0;
    struct nl_event *e = (struct nl_event *)scratch.lookup(&zero);
    if (!e)
        return 0;
    e->kind = EV_EXTACK;
    e->ts_ns = bpf_ktime_get_ns();
    e->dur_ns = 0;
    e->sk = c->sk;
    e->pid = c->pid;
    e->tid = tid;
    e->proto = c->proto;
    e->netns = c->netns;
    e->nl_seq = c->syscall == SC_KERNEL ? (u32)c->arg_len : 0;  /* kernel layer: the request's seq */
    e->flags = 0;
    e->peer_portid = 0;
    e->peer_pid = 0;
    __builtin_memcpy(e->comm, c->comm, sizeof(e->comm));
    int n = bpf_probe_read_kernel_str(e->data, EXTACK_MAX, text);
    e->cap_len = n > 0 ? n - 1 : 0;
    emit_event(ctx, e);
    return 0;
}

/* What a kworker is running: its worker's current work function (task->worker_private
 * is its struct kthread, whose data is the struct worker), 0 for any other task. When
 * rtnl's owner is a kworker (a netns being torn down: cleanup_net), this says why. */
#define PF_WQ_WORKER 0x20
static __always_inline u64 worker_func(u64 task)
{
#ifdef HAVE_WORKER_FUNC
    u32 flags = 0;
    bpf_probe_read_kernel(&flags, sizeof(flags), (void *)(task + OFF_TASK_FLAGS));
    if (!(flags & PF_WQ_WORKER))
        return 0;
    u64 kthread = read_kptr(task + OFF_TASK_WORKER_PRIVATE);
    u64 worker = kthread ? read_kptr(kthread + OFF_KTHREAD_DATA) : 0;
    return worker ? read_kptr(worker + OFF_WORKER_CURRENT_FUNC) : 0;
#else
    return 0;
#endif
}

/* A lock wait begins (the first of nested ones counts): when, and the mutex's owner. */
static __always_inline void lock_wait_begin(struct lock_track *l, u64 lock_addr, u32 flags)
{
    if (l->lock_begin)
        return;
    l->lock_begin = bpf_ktime_get_ns();
    l->lock_addr = lock_addr;
    l->cur_holder_pid = 0;
    l->cur_holder_work = 0;
    if (flags & LCB_F_MUTEX) {
        u64 owner = read_kptr(lock_addr + OFF_MUTEX_OWNER) & ~0x07ULL;
        if (owner) {
            bpf_probe_read_kernel(&l->cur_holder_pid, sizeof(u32), (void *)(owner + OFF_TASK_TGID));
            bpf_probe_read_kernel(l->cur_holder_comm, 16, (void *)(owner + OFF_TASK_COMM));
            l->cur_holder_work = worker_func(owner);
        }
    }
}

/* That wait ends: its time is added, and the longest's owner kept. Returns the wait. */
static __always_inline u64 lock_wait_end(struct lock_track *l, u64 lock_addr)
{
    if (!l->lock_begin || l->lock_addr != lock_addr)
        return 0;
    u64 wait = bpf_ktime_get_ns() - l->lock_begin;
    l->lock_wait += wait;
    if (wait > l->lock_max && l->cur_holder_pid) {
        l->lock_max = wait;
        l->holder_pid = l->cur_holder_pid;
        l->holder_work = l->cur_holder_work;
        __builtin_memcpy(l->holder_comm, l->cur_holder_comm, 16);
    }
    l->lock_begin = 0;
    return wait;
}

/* Time a netlink call spends waiting for kernel locks, and who held the mutex. */
static __always_inline int on_contention_begin(u64 lock_addr, u32 flags)
{
    struct call *c = call_get();
    if (c)
        lock_wait_begin(&c->lk, lock_addr, flags);
    return 0;
}

static __always_inline int on_contention_end(u64 lock_addr)
{
    struct call *c = call_get();
    if (c)
        lock_wait_end(&c->lk, lock_addr);
    return 0;
}

#endif /* NLBPF_WAITS_BPF_H */
