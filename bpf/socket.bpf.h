// SPDX-License-Identifier: GPL-2.0
/* From a file descriptor to its netlink socket, through BTF offsets. */
#ifndef NLBPF_SOCKET_BPF_H
#define NLBPF_SOCKET_BPF_H

static __always_inline u64 read_kptr(u64 addr)
{
    u64 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (void *)addr);
    return v;
}


/* fd of `task` -> struct sock of a netlink socket, or 0. Fills proto and netns. */
static __always_inline u64 netlink_sock_of_task_fd(u64 task, int fd, u8 *proto, u32 *netns)
{
    if (fd < 0)
        return 0;
    u64 files = read_kptr(task + OFF_TASK_FILES);
    if (!files)
        return 0;
    u64 fdt = read_kptr(files + OFF_FILES_FDT);
    if (!fdt)
        return 0;
    u32 max_fds = 0;
    bpf_probe_read_kernel(&max_fds, sizeof(max_fds), (void *)(fdt + OFF_FDT_MAX_FDS));
    if ((u32)fd >= max_fds)
        return 0;
    u64 fd_array = read_kptr(fdt + OFF_FDT_FD);
    u64 file = read_kptr(fd_array + (u64)fd * 8);
    if (!file)
        return 0;
    u64 inode = read_kptr(file + OFF_FILE_INODE);
    u16 mode = 0;
    bpf_probe_read_kernel(&mode, sizeof(mode), (void *)(inode + OFF_INODE_MODE));
    if ((mode & S_IFMT) != S_IFSOCK)
        return 0;
    u64 socket = read_kptr(file + OFF_FILE_PRIVATE);
    u64 sk = read_kptr(socket + OFF_SOCKET_SK);
    if (!sk)
        return 0;
    u16 family = 0;
    bpf_probe_read_kernel(&family, sizeof(family), (void *)(sk + OFF_SOCK_FAMILY));
    if (family != AF_NETLINK)
        return 0;
    u16 protocol = 0;
    bpf_probe_read_kernel(&protocol, sizeof(protocol), (void *)(sk + OFF_SOCK_PROTOCOL));
    *proto = protocol;
    u64 net = read_kptr(sk + OFF_SOCK_NET);
    bpf_probe_read_kernel(netns, sizeof(*netns), (void *)(net + OFF_NET_INUM));
    return sk;
}

#ifndef KERNEL_LAYER
/* The same walk through BTF pointers (task: one, e.g. from bpf_get_current_task_btf):
 * plain loads, checked by the verifier against the running kernel's BTF, where the
 * walk above pays a helper call per field (12 of them: ~340 ns a call here, ~140 ns
 * this way). Only the fd table's slot takes a helper (the verifier does not index
 * it), and its two untyped pointers (the slot, private_data) are typed again with
 * bpf_rdonly_cast: 6.2+, in programs loaded by btfprog.py (the socket layer's; the
 * syscall layer's entry probes with -DFD_WALK_BTF). FILE_ID, SOCKET_ID: BTF ids of
 * struct file and struct socket. */
static __always_inline u64 netlink_sock_of_task_fd_btf(u64 task, int fd, u8 *proto, u32 *netns)
{
    if (fd < 0)
        return 0;
    u64 files = *(u64 *)(task + OFF_TASK_FILES);
    if (!files)
        return 0;
    u64 fdt = *(u64 *)(files + OFF_FILES_FDT);
    if (!fdt || (u32)fd >= *(u32 *)(fdt + OFF_FDT_MAX_FDS))
        return 0;
    u64 file = rdonly_cast(read_kptr(*(u64 *)(fdt + OFF_FDT_FD) + (u64)fd * 8), FILE_ID);
    if (!file)
        return 0;
    u64 inode = *(u64 *)(file + OFF_FILE_INODE);
    if (!inode || (*(u16 *)(inode + OFF_INODE_MODE) & S_IFMT) != S_IFSOCK)
        return 0;
    u64 socket = rdonly_cast(*(u64 *)(file + OFF_FILE_PRIVATE), SOCKET_ID);
    u64 sk = socket ? *(u64 *)(socket + OFF_SOCKET_SK) : 0;
    if (!sk || *(u16 *)(sk + OFF_SOCK_FAMILY) != AF_NETLINK)
        return 0;
    *proto = *(u16 *)(sk + OFF_SOCK_PROTOCOL);
    u64 net = *(u64 *)(sk + OFF_SOCK_NET);
    *netns = net ? *(u32 *)(net + OFF_NET_INUM) : 0;
    return sk;
}
#endif

/* fd of the current thread -> its netlink sock, or 0 (FD_WALK_BTF: through BTF pointers) */
static __always_inline u64 netlink_sock_of_fd(int fd, u8 *proto, u32 *netns)
{
#ifdef FD_WALK_BTF
    return netlink_sock_of_task_fd_btf((u64)bpf_get_current_task_btf(), fd, proto, netns);
#else
    return netlink_sock_of_task_fd((u64)bpf_get_current_task(), fd, proto, netns);
#endif
}

#endif /* NLBPF_SOCKET_BPF_H */
