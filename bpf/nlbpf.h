/* nlbpf event layout: the one place it is declared.
 *
 * The probes fill struct nl_event; Python gets the same layout from bcc's
 * table.event(), which parses this declaration. Keep it flat (bcc cannot lay
 * out nested structs for ring buffers) and keep `data` last: events are
 * handed over cut to NL_EVENT_HDR + cap_len bytes.
 */
#ifndef NLBPF_H
#define NLBPF_H

#ifndef SNAPLEN
#define SNAPLEN 1024            /* bytes of each message kept, header included */
#endif

/* event kinds */
#define EV_MSG 1                /* one netlink message (data = the message) */
#define EV_SYSERR 2             /* a netlink send/recv call failed (ret < 0) */
#define EV_SPAN 3               /* a netlink call that lasted long (slow mode) */
#define EV_EXTACK 4             /* netlink:netlink_extack text (data = text) */
#define EV_CHUNK 5              /* consecutive dump parts of one reply, whole (data = the
                                   messages back to back, cap_len bytes; trace, syscall layer) */

#ifndef CHUNK_MAX
#define CHUNK_MAX 16384         /* bytes of dump parts handed over in one EV_CHUNK (power of 2) */
#endif

/* directions */
#define DIR_SEND 0
#define DIR_RECV 1

/* syscalls */
#define SC_SENDMSG 1
#define SC_SENDTO 2
#define SC_SENDMMSG 3
#define SC_RECVMSG 4
#define SC_RECVFROM 5
#define SC_RECVMMSG 6
#define SC_KERNEL 7              /* seen by the kernel-function layer, not a syscall */
#define SC_WRITE 8
#define SC_WRITEV 9
#define SC_READ 10
#define SC_READV 11
#define SC_PWRITEV2 12
#define SC_PREADV2 13

/* event flags */
#define EVF_SPLIT 1             /* message straddled iovecs: data is partial */
#define EVF_FINAL 2             /* kernel saw this as the final reply of a request */
#define EVF_SKIPPED_INTR 4      /* a part the kernel did not hand over had NLM_F_DUMP_INTR */
#define EVF_HELD 8              /* request held in the kernel and handed over with its reply */
#define EVF_IN_HANDLER 16       /* notification sent while a request handler ran (else kernel-originated) */
#define EVF_NO_START 32         /* a request whose start is not known (socket layer: rebuilt from its
                                   reply's echo), so no latency */
#define EVF_IN_PROGRESS 64      /* EV_SPAN: the call is still running (slow, socket layer) */
#define EVF_CALL_END 128        /* EV_MSG with no message: the request's call ended and no final
                                   reply was queued for it (slow, socket layer) */
#define EVF_OVERLONG 256        /* the message claims more bytes than its buffer holds: a send the
                                   kernel ignored (and the rest of the buffer with it), or a reply
                                   cut by the reader's buffer */

/* peer_portid of a message from user space whose port is not known (recvmmsg) */
#define PEER_UNKNOWN 0xffffffff

struct nl_event {
    u64 ts_ns;                  /* CLOCK_MONOTONIC at syscall entry (socket layer: when seen) */
    u64 dur_ns;                 /* syscall duration */
    u64 sk;                     /* kernel socket address: identity for pairing */
    u64 cgroup;                 /* cgroup v2 id */
    u64 lock_wait_ns;           /* final replies: lock wait over the whole request */
    u64 skipped_bytes;          /* dump bytes the kernel counted but did not hand over */
    u64 handler_ns;             /* final replies, kernel layer: time in the request's handler */
    u64 dump_ns;                /* final replies, kernel layer: time spent filling dump chunks */
    u64 start_slack_ns;         /* requests: the start lies between ts_ns and ts_ns + this (slow,
                                   socket layer: between two looks at the thread) */
    u64 holder_work;            /* the mutex owner is a kworker: the function its work item
                                   runs (an address; userspace names it from kallsyms) */
    u32 pid;
    u32 tid;
    u32 netns;                  /* inode of the socket's netns */
    u32 portid;                 /* the socket's own port id */
    u32 groups;                 /* nl_groups from msg_name: non-zero means multicast */
    s32 ret;                    /* syscall return value */
    u32 skipped_parts;
    u32 holder_pid;             /* owner of the longest-waited mutex */
    u32 peer_portid;            /* the other end: who sent a received message, where a sent one
                                   went. 0 is the kernel (no user socket has port 0) */
    u32 peer_pid;               /* received from user space: the sender's pid (its credentials) */
    u32 nl_len;                 /* nlmsg_len as the header claims */
    u32 nl_seq;
    u16 nl_type;
    u16 nl_flags;
    u16 cap_len;                /* bytes in data[] */
    u8 kind;
    u8 dir;
    u8 proto;
    u8 syscall;
    u16 flags;
    char comm[16];
    char holder_comm[16];
    u8 data[SNAPLEN];
};

#define NL_EVENT_HDR (sizeof(struct nl_event) - SNAPLEN)

/* counters in the `stats` per-CPU array */
#define ST_LOST 0               /* events the ring/perf buffer had no room for (in messages) */
#define ST_TRUNC_WALK 1         /* syscalls whose messages were not all walked */
#define ST_EMITTED 2            /* events handed over (an EV_CHUNK counts its messages) */
#define ST_PENDING_FULL 3       /* requests whose pairing entry the LRU could not take */
#define ST_UNSEEN 4             /* netlink sends/receives by a path the layer does not walk
                                   (io_uring, sendfile...: syscall layer, from sock:*_length) */
#define ST_FOLLOW_FULL 5         /* processes the command forked that the follow table had
                                   no room for (trace -- CMD): their traffic unseen */
#define ST_NR 6

/* errors --ignore: a failure the user expects (RTM_NEWLINK:ENODEV) is dropped in the
 * kernel and counted in its rule's entry. A rule's type or errno may be "any"; a
 * rule for a type number without a protocol is one entry per protocol. */
#define IGNORE_ANY_TYPE 0xffff
#define IGNORE_ANY_PROTO 0xff
struct ignore_key {
    s32 err;                    /* as the reply says it: -ENODEV; 0: any */
    u16 type;                   /* the request's type, or IGNORE_ANY_TYPE */
    u8 proto;                   /* or IGNORE_ANY_PROTO (with any type only) */
    u8 pad;
};

/* per-process aggregates kept in the kernel for `top` */
#define LAT_BUCKETS 128         /* log2 of latency in ns, 2 sub-buckets each */
struct top_val {
    u64 requests;
    u64 errors;
    u64 dumps;
    u64 dump_intr;
    u64 msgs_in;
    u64 msgs_out;
    u64 bytes_in;
    u64 bytes_out;
    u64 lat_max_ns;             /* the largest latency of interval lat_max_epoch */
    u64 lat_max_epoch;          /* top_epoch's value when lat_max_ns was set */
    u64 lat_count;
    u64 lat_sum_ns;
    u64 lock_wait_ns;
    char comm[16];
    u32 lat_hist[LAT_BUCKETS];
};

struct top_type_key {
    u32 pid;
    u16 type;
    u8 proto;
    u8 pad;
};

/* serve (top with -DCOUNT_ERRNO): failed requests per process, protocol, request
 * type and errno */
struct top_err_key {
    u32 pid;
    u16 type;
    u8 proto;
    u8 pad;
    s32 err;                    /* the NLMSG_ERROR's (or DONE's) status: negative */
};

/* serve (top with -DTYPE_HIST): latency and lock wait per protocol and request type,
 * where the layer sees a request's start (kernel functions, syscalls) */
struct type_key {
    u16 type;
    u8 proto;
    u8 pad;
};
struct type_hist {
    u64 count;
    u64 lat_sum_ns;
    u64 lock_sum_ns;
    u32 lat_hist[LAT_BUCKETS];
    u32 lock_hist[LAT_BUCKETS];
};

/* slow: after a request it reports, the same thread's next AFTER_SLOW_COUNT requests are
 * handed over too if they come within AFTER_SLOW_NS: iproute2's feature probe
 * (RTM_NEWLINK seq=0) is often the one that waited, and the request the user made comes
 * next (after a name lookup). */
#define AFTER_SLOW_NS 1000000000
#define AFTER_SLOW_COUNT 3
struct after_slow_val {
    u64 until;
    u32 left;
    u32 pad;
};

/* Which requests change a table a dump may be walking, so that its next part is marked
 * NLM_F_DUMP_INTR (errors names them beside the dump): the probes' is_change() and
 * Python's netlink.is_change() both read these. rtnetlink: types from RTM_BASE come
 * in fours, NEW, DEL, GET and SET; every one but the GET is a change. nftables
 * (subsystem NFNL_SUBSYS_NFTABLES): every subtype but those in NFT_NOT_CHANGES, a bit
 * mask of the GETs (1, 4, ... 19, 21, 23, 25, 33) and what only the kernel sends
 * (NEWGEN 15, TRACE 17). The other families' dumps check no generation. */
#define RTM_BASE 16
#define RTM_GET_OFFSET 2
#define NFNL_SUBSYS_NFTABLES 10
#define NFT_NOT_CHANGES 0x202aba492

#endif
