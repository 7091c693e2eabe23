"""How a task's command is started when it cannot be spawned as it is: inside its cgroup, in
its working directory, under its rlimits. Python's `posix_spawn` can do none of these (no
`CLONE_INTO_CGROUP`, no chdir in 3.11), and a raw `clone3` from a threaded Python process may
run nothing but `exec` in the child; so the child execs a wrapper that does them and then
execs the command.

The wrapper is `/bin/sh` (rlimits always; everything on machines without the helper), or,
on x86-64 Linux, the helper: a 500-byte static executable (its code is listed below) that
writes "0" to the task's `cgroup.procs` (joining it), chdirs and execs the command, with no
dynamic loader, libc or shell start-up: measured here, an extra exec of /bin/sh costs a task
about 0.9 ms, one of the helper 0.1-0.2 ms. The helper lives in a sealed memfd (nothing on disk to
tamper with; its bytes cannot change once sealed) and is exec'd as `/proc/self/fd/N`; it is
proven by running it once before it is used, else `/bin/sh` is used.

This module decides how a command is started; which cgroup it joins is containment's.
"""

from __future__ import annotations

import fcntl
import os
import platform
import select
import signal
import struct
import subprocess
import time

from l3tui.config.schema import RLimits
from l3tui.engine.executors.base import CommandJob

JOIN = 'echo $$ > "$1" || exit 126; shift; '
"""The shell wrapper's first step: join the task cgroup named by $1, before the command."""

# x86-64 code of the helper, argv = [name, cgroup.procs or "", directory or "", executable,
# the command's argv...] (gcc -c, objcopy -O binary -j .text; addresses on the left):
#   00 mov rdi,[rsp+0x10]; cmp byte [rdi],0; je 4f     argv[1] "": no cgroup to join
#   0a mov eax,2; mov esi,0x80001; syscall              open(argv[1], O_WRONLY|O_CLOEXEC)
#   16 lea rsi,[m_join]; mov edx,39; test rax,rax; js a2
#   27 mov rdi,rax; mov eax,1; lea rsi,["0"]; mov edx,1; syscall   write(fd, "0", 1)
#   3b lea rsi,[m_join]; mov edx,39; cmp rax,1; jne a2
#   4f mov rdi,[rsp+0x18]; cmp byte [rdi],0; je 73     argv[2] "": stay where we are
#   59 mov eax,80; syscall                               chdir(argv[2])
#   60 lea rsi,[m_cd]; mov edx,51; test rax,rax; js a2
#   73 mov rdi,[rsp+0x20]; lea rsi,[rsp+0x28]; mov rcx,[rsp]; lea rdx,[rsp+rcx*8+0x10]
#   87 mov eax,59; syscall                               execve(argv[3], &argv[4], envp)
#   8e lea rsi,[m_exec]; mov edx,45; mov ebx,127; cmp rax,-2; je a7   ENOENT: 127, as sh
#   a2 mov ebx,126
#   a7 mov edi,2; mov eax,1; syscall                     write(2, message, length)
#   b3 mov edi,ebx; mov eax,231; syscall                 exit_group(126 or 127)
#   bc "0", then the three messages (m_join, m_cd, m_exec)
_X86_64_CODE = bytes.fromhex(
    "488b7c2410803f007445b802000000be010008000f05488d35a0000000ba270000004885c0787b4889c7"
    "b801000000488d3586000000ba010000000f05488d3579000000ba270000004883f8017553488b7c2418"
    "803f007418b8500000000f05488d357d000000ba330000004885c07831488b7c2420488d742428488b0c"
    "24488d54cc10b83b0000000f05488d3585000000ba2d000000bb7f0000004883f8fe7405bb7e000000bf"
    "02000000b8010000000f0589dfb8e70000000f0530"
) + (b"l3tui: the task cannot join its cgroup\n"
     b"l3tui: the task cannot enter its working directory\n"
     b"l3tui: the task's command cannot be executed\n")  # fmt: skip
HELPER_ARGV0 = "l3tui-task"
MFD_EXEC = 0x10
"""Linux 6.3+: the memfd may be executed (where `vm.memfd_noexec` would refuse it)."""


def _elf(code: bytes, machine: int) -> bytes:
    """A static ELF64 executable of `code` (position independent), loaded read+execute at
    0x400000, entry right after the headers; PT_GNU_STACK says the stack is not executable
    (without it, older kernels would give the helper, and the command it execs, the
    READ_IMPLIES_EXEC personality)."""
    base, headers = 0x400000, 64 + 2 * 56
    size = headers + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, base + headers, 64, 0, 0,
                                 64, 56, 2, 64, 0, 0)  # fmt: skip
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    stack = struct.pack("<IIQQQQQQ", 0x6474E551, 6, 0, 0, 0, 0, 0, 16)
    return header + load + stack + code


_helper: str | None = None
_helper_tried = False
_helper_id: tuple[int, int] | None = None
"""(device, inode) of the helper's memfd: the fd is checked to hold it still before each use
(something may have closed it, and its number then names another file)."""


def helper_path() -> str | None:
    """`/proc/self/fd/N` of the helper, once it ran correctly here; None where it cannot."""
    global _helper, _helper_tried
    if _helper is not None and not _still_ours(_helper):
        _helper, _helper_tried = None, False  # made again, or given up
    if not _helper_tried:
        _helper_tried = True
        _helper = _make_helper()
    return _helper


def _still_ours(path: str) -> bool:
    try:
        st = os.stat(int(path.rsplit("/", 1)[1]))
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == _helper_id


def _make_helper() -> str | None:
    if platform.machine() not in ("x86_64", "AMD64") or not hasattr(os, "memfd_create"):
        return None
    try:
        try:
            fd = os.memfd_create(HELPER_ARGV0, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING | MFD_EXEC)
        except OSError:  # before Linux 6.3: no MFD_EXEC, and none needed
            fd = os.memfd_create(HELPER_ARGV0, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, _elf(_X86_64_CODE, 62))
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK
                        | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)  # fmt: skip
            # Read-only, at 3 or above: a file open for writing cannot be exec'd (ETXTBSY),
            # and the spawn's file actions replace 0-2 before the exec.
            ro = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(fd)
        if ro < 3:
            low, ro = ro, fcntl.fcntl(ro, fcntl.F_DUPFD_CLOEXEC, 3)
            os.close(low)
        path = f"/proc/self/fd/{ro}"
        global _helper_id
        st = os.fstat(ro)
        _helper_id = (st.st_dev, st.st_ino)
        # Proven before use: it runs a command in a directory and passes its exit status.
        pid = os.posix_spawn(path, [HELPER_ARGV0, "", "/", "/bin/sh", "sh", "-c",
                                    'test "$PWD" = / && exit 7'], {})  # fmt: skip
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 7:
            return path
        os.close(ro)
    except OSError:
        pass
    return None


_nproc_flag: str | None = None


def _ulimit_nproc_flag() -> str:
    """dash spells the process limit `-p`, bash `-u`."""
    global _nproc_flag
    if _nproc_flag is None:
        probe = subprocess.run(["/bin/sh", "-c", "ulimit -p 100000"], capture_output=True,
                               check=False)  # fmt: skip
        _nproc_flag = "-p" if probe.returncode == 0 else "-u"
    return _nproc_flag


def wrap(job: CommandJob, join: str | None = None) -> tuple[str, list[str]]:
    """The executable and argv to spawn: the command as it is when it needs nothing done
    first, else the helper (cgroup, directory), else /bin/sh (rlimits, or no helper)."""
    if job.cwd is None and job.rlimits is None and join is None:
        return job.executable, list(job.argv)
    helper = helper_path() if job.rlimits is None else None
    if helper is not None:
        return helper, [HELPER_ARGV0, join or "", job.cwd or "", job.executable, *job.argv]
    return shell_wrap(job, join)


def shell_wrap(job: CommandJob, join: str | None = None) -> tuple[str, list[str]]:
    """The /bin/sh wrapper: join the cgroup (`join`: its cgroup.procs file), chdir and set
    rlimits, then exec the command (by its executable, as argv[0])."""
    if job.cwd is None and job.rlimits is None and join is None:
        return job.executable, list(job.argv)
    limits: list[str] = []
    r: RLimits | None = job.rlimits
    if r is not None:
        if r.address_space_mb:
            limits.append(f"ulimit -v {r.address_space_mb * 1024}")
        if r.cpu_seconds:
            limits.append(f"ulimit -t {r.cpu_seconds}")
        if r.open_files:
            limits.append(f"ulimit -n {r.open_files}")
        if r.processes:
            limits.append(f"ulimit {_ulimit_nproc_flag()} {r.processes}")
    script = JOIN if join is not None else ""
    script += 'cd -- "$1" || exit 126; shift; ' + "".join(f"{cmd} || exit 126; " for cmd in limits)
    script += 'exec "$@"'
    argv = ["/bin/sh", "-c", script, HELPER_ARGV0, *([join] if join is not None else []),
            job.cwd or ".", job.executable, *job.argv[1:]]  # fmt: skip
    return "/bin/sh", argv


def run_probe(join: str, timeout_s: float = 10.0) -> tuple[int, str]:
    """A process started as tasks are (helper or shell) joins the cgroup of `join` (its
    cgroup.procs file) and exits 0: (its exit status, the last line of its output); killed
    after `timeout_s` (status -9)."""
    executable, argv = wrap(CommandJob(("sh", "-c", "exit 0"), "/bin/sh", {}, None, 10.0), join)
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(executable, argv, {}, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, write_fd, 1), (os.POSIX_SPAWN_DUP2, write_fd, 2)])  # fmt: skip
    except OSError:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    said, deadline = b"", time.monotonic() + timeout_s
    try:
        while len(said) < 65536 and select.select([read_fd], [], [],
                                                  max(deadline - time.monotonic(), 0))[0]:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            said += chunk
        else:
            os.kill(pid, signal.SIGKILL)  # still running at the deadline
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    lines = said.decode("utf-8", "replace").strip().splitlines()
    return os.waitstatus_to_exitcode(status), lines[-1] if lines else ""
