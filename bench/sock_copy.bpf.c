// SPDX-License-Identifier: GPL-2.0
/* The least a socket-layer `trace` would do in the kernel (bench/floor.py --sock-copy).
 *
 * On the socket layer's two hooks, hand every netlink message to user space the
 * way a trace must: who (pid, tid, comm, cgroup), when, which socket, and up to
 * SNAPLEN bytes of the message, through a ring buffer woken every 64 records.
 *   sock:sk_data_ready     the buffer just queued to a netlink socket (replies,
 *                          acks, dump parts, notifications), from kernel memory
 *   sock:sock_send_length  a netlink send's request, from the sender's buffer
 *                          (the syscall's registers -> msghdr -> first iovec)
 * No filter, no pairing, no dump walk: a lower bound on what such a trace costs
 * the traced process. Offsets come in as -D OFF_* from the running kernel's BTF.
 *
 * bench/copy_costs.py takes the work apart, one -D at a time (each implies the
 * ones below it in this list):
 *   COPY_NOTHING    return after the family check (the hook's dispatch alone)
 *   COPY_NO_COMM    no bpf_get_current_comm
 *   COPY_NO_CGROUP  no bpf_get_current_cgroup_id
 *   COPY_NO_DATA    the message's bytes not read
 *   COPY_NO_OUTPUT  nothing written to the ring buffer
 * so COPY_NO_OUTPUT is everything but the ring buffer's write, COPY_NO_DATA that
 * less the message's bytes, and so on down to the dispatch.
 */
#define AF_NETLINK 16
#define NR_SENDTO 44
#define NR_SENDMSG 46
#define SNAPLEN 1024
#define WAKEUP_EVERY 64
#ifdef COPY_NOTHING
#define COPY_NO_COMM
#endif
#ifdef COPY_NO_COMM
#define COPY_NO_CGROUP
#endif
#ifdef COPY_NO_CGROUP
#define COPY_NO_DATA
#endif
#ifdef COPY_NO_DATA
#define COPY_NO_OUTPUT
#endif
#ifndef RING_PAGES
#define RING_PAGES 4096         /* 16 MB, as nlbpf's */
#endif

struct copy_event {
    u64 ts_ns;
    u64 sk;
    u64 cgroup;
    u32 pid;
    u32 tid;
    u32 len;
    u32 cap_len;
    u8 dir;
    u8 pad[7];
    char comm[16];
    char data[SNAPLEN];
};

static long (*read_user)(void *dst, __u32 size, const void *src) =
    (void *)BPF_FUNC_probe_read_user;
static u64 (*task_pt_regs_h)(void *task) = (void *)BPF_FUNC_task_pt_regs;

BPF_RINGBUF_OUTPUT(copies, RING_PAGES);
BPF_PERCPU_ARRAY(copy_scratch, struct copy_event, 1);
BPF_PERCPU_ARRAY(copy_quiet, u32, 1);
BPF_PERCPU_ARRAY(copy_lost, u64, 1);     /* records the ring had no room for */

static __always_inline struct copy_event *copy_start(u64 sk, u8 dir)
{
    u32 zero = 0;
    struct copy_event *e = copy_scratch.lookup(&zero);
    if (!e)
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    e->ts_ns = bpf_ktime_get_ns();
    e->sk = sk;
#ifndef COPY_NO_CGROUP
    e->cgroup = bpf_get_current_cgroup_id();
#endif
    e->pid = id >> 32;
    e->tid = (u32)id;
    e->dir = dir;
#ifndef COPY_NO_COMM
    bpf_get_current_comm(e->comm, sizeof(e->comm));
#endif
    return e;
}

static __always_inline void copy_submit(struct copy_event *e, u64 n)
{
    u32 zero = 0;
    u64 flags = BPF_RB_NO_WAKEUP;
    u32 *quiet = copy_quiet.lookup(&zero);
    if (quiet && ++*quiet >= WAKEUP_EVERY) {
        *quiet = 0;
        flags = BPF_RB_FORCE_WAKEUP;
    }
    e->cap_len = n;
    u64 size = offsetof(struct copy_event, data) + n;
    if (size > sizeof(*e))
        size = sizeof(*e);
#ifdef COPY_NO_OUTPUT
    asm volatile("" : : "r"(size), "r"(flags), "r"(e) : "memory");  /* keep the writes above */
#else
    if (copies.ringbuf_output(e, size, flags)) {
        u64 *lost = copy_lost.lookup(&zero);
        if (lost)
            (*lost)++;
    }
#endif
}

/* Hand over the message of len bytes at src (user memory if user, else kernel),
 * up to SNAPLEN of it. */
static __always_inline void copy_message(u64 sk, u8 dir, u64 src, u64 len, int user)
{
    struct copy_event *e = copy_start(sk, dir);
    if (!e)
        return;
    e->len = len;
    u64 n = len < SNAPLEN ? len : SNAPLEN;
    asm volatile("" : "+r"(n));
    if (n > SNAPLEN)
        n = SNAPLEN;
#ifdef COPY_NO_DATA
    n = 0;
#else
    long err = user ? read_user(e->data, n, (void *)src)
                    : bpf_probe_read_kernel(e->data, n, (void *)src);
    if (err)
        n = 0;
#endif
    copy_submit(e, n);
}

int copy_sk_data_ready(u64 *ctx)
{
    u64 sk = ctx[0];
    asm volatile("" : "+r"(sk));        /* plain loads: keep bcc from rewriting them */
    if (*(u16 *)(sk + OFF_SOCK_FAMILY) != AF_NETLINK)
        return 0;
#ifdef COPY_NOTHING
    return 0;
#endif
    u64 q = sk + OFF_SOCK_RCVQ;
    u64 skb = *(u64 *)(q + 8);          /* the buffer just queued: the queue's last */
    if (skb == q)
        return 0;
    u64 data = *(u64 *)(skb + OFF_SKB_DATA);
    u32 len = *(u32 *)(skb + OFF_SKB_LEN);
    copy_message(sk, 1, data, len, 0);
    return 0;
}

int copy_sock_send_length(u64 *ctx)
{
    u64 sk = ctx[0];
    asm volatile("" : "+r"(sk));
    if (*(u16 *)(sk + OFF_SOCK_FAMILY) != AF_NETLINK)
        return 0;
#ifdef COPY_NOTHING
    return 0;
#endif
    u64 regs = task_pt_regs_h(bpf_get_current_task_btf());
    if (!regs)
        return 0;
    u64 nr = *(u64 *)(regs + OFF_REGS_ORIG_AX);
    u64 base = *(u64 *)(regs + OFF_REGS_SI);
    u64 avail = *(u64 *)(regs + OFF_REGS_DX);
    if (nr == NR_SENDMSG) {
        u64 iov = 0;
        read_user(&iov, sizeof(iov), (void *)(base + 16));
        u64 v[2] = {};
        read_user(v, sizeof(v), (void *)iov);
        base = v[0];
        avail = v[1];
    } else if (nr != NR_SENDTO) {
        return 0;
    }
    copy_message(sk, 0, base, avail, 1);
    return 0;
}
