"""Struct member offsets from the running kernel's BTF (/sys/kernel/btf/vmlinux).

The probes read a few kernel structs (fd -> file -> socket -> sock, netns,
portid, mutex owner). Headers for another kernel version give wrong offsets,
so the offsets are taken from BTF and handed to the C code as -D defines.
Only what is needed to walk struct members is parsed here.
"""
import struct

BTF_PATH = "/sys/kernel/btf/vmlinux"

# BTF kinds (include/uapi/linux/btf.h) and the size of the data that follows each type.
KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM = 1, 2, 3, 4, 5, 6
KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_FUNC = 8, 9, 10, 11, 12
KIND_FUNC_PROTO, KIND_VAR, KIND_DATASEC, KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64 = 13, 14, 15, 17, 18, 19
_MODIFIERS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)


# kfuncs the probes call (patched in by btfprog.patch_kfuncs: bcc cannot emit them)
KFUNCS = ("bpf_rdonly_cast",)


class BTFError(Exception):
    pass


class BTF:
    def __init__(self, blob):
        magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = \
            struct.unpack_from("<HBBIIIII", blob, 0)
        if magic != 0xEB9F:
            raise BTFError("not a little-endian BTF blob")
        self._strings = blob[hdr_len + str_off:hdr_len + str_off + str_len]
        self.types = [None]          # type id 0 is void
        self._by_name = {}
        self.functions = set()       # names of kernel functions BTF describes
        # type ids that BTF-typed programs attach by: tp_btf programs name the tracepoint's
        # typedef (btf_trace_<event>), iterators the target's function (bpf_iter_<target>)
        self.attach_ids = {}
        self._parse_types(blob[hdr_len + type_off:hdr_len + type_off + type_len])

    @classmethod
    def load(cls, path=BTF_PATH):
        try:
            with open(path, "rb") as f:
                return cls(f.read())
        except OSError as e:
            raise BTFError(f"cannot read {path}: {e.strerror}") from None

    def _name(self, off):
        end = self._strings.index(b"\0", off)
        return self._strings[off:end].decode()

    def _parse_types(self, data):
        pos = 0
        while pos < len(data):
            name_off, info, size_or_type = struct.unpack_from("<III", data, pos)
            pos += 12
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            kind_flag = info >> 31
            t = {"kind": kind, "name_off": name_off, "size": size_or_type, "type": size_or_type}
            if kind == KIND_INT or kind == KIND_VAR or kind == KIND_DECL_TAG:
                pos += 4
            elif kind == KIND_ARRAY:
                t["type"], _, t["nelems"] = struct.unpack_from("<III", data, pos)
                pos += 12
            elif kind in (KIND_STRUCT, KIND_UNION):
                members = []
                for _ in range(vlen):
                    m_name, m_type, m_off = struct.unpack_from("<III", data, pos)
                    pos += 12
                    bit_off = m_off & 0xFFFFFF if kind_flag else m_off
                    bitfield = (m_off >> 24) if kind_flag else 0
                    members.append((m_name, m_type, bit_off, bitfield))
                t["members"] = members
            elif kind == KIND_ENUM:
                pos += 8 * vlen
            elif kind in (KIND_FUNC_PROTO,):
                pos += 8 * vlen
            elif kind == KIND_DATASEC or kind == KIND_ENUM64:
                pos += 12 * vlen
            self.types.append(t)
            if kind in (KIND_STRUCT, KIND_UNION) and name_off:
                self._by_name.setdefault(self._name(name_off), len(self.types) - 1)
            elif kind == KIND_FUNC and name_off:
                name = self._name(name_off)
                self.functions.add(name)
                if name.startswith("bpf_iter_") or name in KFUNCS:
                    self.attach_ids[name] = len(self.types) - 1
            elif kind == KIND_TYPEDEF and name_off:
                name = self._name(name_off)
                if name.startswith("btf_trace_"):
                    self.attach_ids[name] = len(self.types) - 1

    def _resolve(self, type_id):
        """Skip typedefs and qualifiers."""
        t = self.types[type_id]
        while t is not None and t["kind"] in _MODIFIERS:
            type_id = t["type"]
            t = self.types[type_id]
        return type_id

    def _find_member(self, type_id, name):
        """(byte offset, member type id) of `name`, looking into anonymous members."""
        t = self.types[self._resolve(type_id)]
        if t is None or t["kind"] not in (KIND_STRUCT, KIND_UNION):
            return None
        for m_name, m_type, bit_off, bitfield in t["members"]:
            if m_name and self._name(m_name) == name:
                if bitfield or bit_off % 8:
                    raise BTFError(f"member {name} is a bitfield")
                return bit_off // 8, m_type
            if not m_name:          # anonymous struct/union: search inside
                inner = self._find_member(m_type, name)
                if inner is not None:
                    return bit_off // 8 + inner[0], inner[1]
        return None

    def offset(self, path):
        """Byte offset of a dotted member path such as 'sock.__sk_common.skc_family'."""
        struct_name, *members = path.split(".")
        type_id = self._by_name.get(struct_name)
        if type_id is None:
            raise BTFError(f"struct {struct_name} not in BTF")
        total = 0
        for name in members:
            found = self._find_member(type_id, name)
            if found is None:
                raise BTFError(f"no member {name} on the way to {path}")
            total += found[0]
            type_id = found[1]
        return total

    def struct_id(self, name):
        type_id = self._by_name.get(name)
        if type_id is None:
            raise BTFError(f"struct {name} not in BTF")
        return type_id

    def size(self, struct_name):
        type_id = self._by_name.get(struct_name)
        if type_id is None:
            raise BTFError(f"struct {struct_name} not in BTF")
        return self.types[type_id]["size"]


# What the probes read, by the name of the -D define the C code expects.
# Member names that moved between kernels are listed as alternatives.
PROBE_OFFSETS = {
    "OFF_TASK_FILES": ["task_struct.files"],
    "OFF_TASK_TGID": ["task_struct.tgid"],
    "OFF_TASK_PID": ["task_struct.pid"],
    "OFF_TASK_COMM": ["task_struct.comm"],
    "OFF_FILES_FDT": ["files_struct.fdt"],
    "OFF_FDT_MAX_FDS": ["fdtable.max_fds"],
    "OFF_FDT_FD": ["fdtable.fd"],
    "OFF_FILE_INODE": ["file.f_inode"],
    "OFF_FILE_PRIVATE": ["file.private_data"],
    "OFF_INODE_MODE": ["inode.i_mode"],
    "OFF_SOCKET_SK": ["socket.sk"],
    "OFF_SOCK_FAMILY": ["sock.__sk_common.skc_family"],
    "OFF_SOCK_PROTOCOL": ["sock.sk_protocol"],
    "OFF_SOCK_NET": ["sock.__sk_common.skc_net"],
    "OFF_NET_INUM": ["net.ns.inum"],
    "OFF_NLSK_PORTID": ["netlink_sock.portid"],
    "OFF_NLSK_DST_PORTID": ["netlink_sock.dst_portid"],
    "OFF_MUTEX_OWNER": ["mutex.owner"],
    # NETLINK_CB(skb): who sent a buffer (port 0: the kernel), its pid, its group
    "OFF_SKB_CB": ["sk_buff.cb"],
    "OFF_NLCB_PORTID": ["netlink_skb_parms.portid"],
    "OFF_NLCB_CREDS_PID": ["netlink_skb_parms.creds.pid"],
    "OFF_NLCB_DST_GROUP": ["netlink_skb_parms.dst_group"],
}


# What a kworker that holds a lock is running (slow names it): its struct kthread
# (task_struct.worker_private, Linux 5.17+), whose data is its struct worker. Optional:
# without them the owner is named by its comm only.
WORKER_OFFSETS = {
    "OFF_TASK_FLAGS": ["task_struct.flags"],
    "OFF_TASK_WORKER_PRIVATE": ["task_struct.worker_private"],
    "OFF_KTHREAD_DATA": ["kthread.data"],
    "OFF_WORKER_CURRENT_FUNC": ["worker.current_func"],
}


# What the socket-tracepoint layer reads on top of those (its programs read most
# fields with plain loads, which the verifier checks against BTF: these offsets
# must be the running kernel's). pt_regs: the syscall's arguments, x86-64.
SOCK_OFFSETS = {
    "OFF_SOCK_RCVQ": ["sock.sk_receive_queue"],
    "OFF_SOCK_DROPS": ["sock.sk_drops"],
    "OFF_SKB_DATA": ["sk_buff.data"],
    "OFF_SKB_LEN": ["sk_buff.len"],
    "OFF_SKB_PREV": ["sk_buff.prev"],
    "OFF_NLSK_CB_NLH": ["netlink_sock.cb.nlh"],
    "OFF_TASK_FLAGS": ["task_struct.flags"],
    "OFF_TASK_STATE": ["task_struct.__state", "task_struct.state"],
    "OFF_TASK_UTIME": ["task_struct.utime"],
    "OFF_TASK_STIME": ["task_struct.stime"],
    "OFF_TASK_CGROUPS": ["task_struct.cgroups"],
    "OFF_CSS_DFL_CGRP": ["css_set.dfl_cgrp"],
    "OFF_CGROUP_KN": ["cgroup.kn"],
    "OFF_KN_ID": ["kernfs_node.id"],
    "OFF_REGS_ORIG_AX": ["pt_regs.orig_ax"],
    "OFF_REGS_DI": ["pt_regs.di"],
    "OFF_REGS_SI": ["pt_regs.si"],
    "OFF_REGS_DX": ["pt_regs.dx"],
}


# What the kernel-function layer reads on top of those.
KERNEL_OFFSETS = {
    "OFF_SKB_DATA": ["sk_buff.data"],
    "OFF_SKB_LEN": ["sk_buff.len"],
    "OFF_NLCB_SK": ["netlink_skb_parms.sk"],
    "OFF_NLSK_FLAGS": ["netlink_sock.flags"],
    "OFF_NLSK_CB_NLH": ["netlink_sock.cb.nlh"],
    "OFF_EXTACK_MSG": ["netlink_ext_ack._msg"],
}


def probe_offsets(btf=None, table=PROBE_OFFSETS):
    """{define: offset} for every member the probes read; raises BTFError if one is missing."""
    btf = btf or BTF.load()
    out = {}
    for define, candidates in table.items():
        errors = []
        for path in candidates:
            try:
                out[define] = btf.offset(path)
                break
            except BTFError as e:
                errors.append(str(e))
        else:
            raise BTFError("; ".join(errors))
    return out
