"""Run untrusted, model-generated Python programs in an OS-level sandbox.

This module holds the isolation only: ``SandboxLimits``, ``ProgramResult`` (one of ``PROGRAM_STATUSES``),
the namespace helper program, ``run_python`` and ``run_python_many``. ``run_python(program, stdin,
limits)`` runs a whole program (reads stdin, prints, imports the standard library) and returns a
``ProgramResult``; it never raises for anything the program does. What runs inside is up to the caller:
the toy benchmark's function tests (``function_tests.run_tests``/``run_many``) and the benchmark judges
(``benchmarks/``) pass it their own driver programs.

How a run is isolated (Linux only; needs root, as the scorer runs on our machines):

* The parent (possibly multi-threaded) only spawns a fresh helper interpreter, ``python -I -S -c
  _HELPER``; all namespace work happens in that single-threaded helper, never in a ``preexec_fn``.
* The helper calls ``unshare(NEWNS|NEWPID|NEWNET|NEWIPC|NEWUTS)`` and forks the pid namespace's init
  (pid 1). The new network namespace holds only a loopback that is down: no network at all. The pid
  namespace means the program sees no other process, so it cannot signal the scorer or another run;
  when init exits (program finished, timed out, or init was killed) the kernel kills every process
  left in the namespace, and the helper only returns after it has reaped init, i.e. after the last
  of them is gone. Nothing of a run survives its verdict.
* Filesystem: init makes every mount private, builds a new root on a tmpfs and ``pivot_root``s into
  it, then detaches the old root, so nothing outside the new root is reachable. The new root holds
  read-only (and nosuid) bind mounts of /usr, /etc, the top-level /bin, /lib... entries (symlinks are
  copied as symlinks), and the base interpreter's prefix at its own path. The prefix is what makes
  the stdlib reachable without exposing its parent: for a pyenv Python under /root (mode 700) the
  new root gets empty directories /root/.pyenv/versions and only the version directory is bound in,
  so the rest of /root, the project tree (cwd), the artifact store (TESSY_HOME), /home, /work, /opt,
  /var and the host's /tmp do not exist inside. Any of TESSY_HOME, the cwd or /root that *does*
  fall under an exposed directory gets an empty read-only tmpfs over it (unless it holds one of
  them, e.g. a cwd of /usr, which cannot be hidden without breaking the interpreter). /dev holds
  only null, zero, full, random and urandom; /proc is a fresh procfs of the pid namespace; /tmp,
  /var/tmp, /dev/shm and /run are empty directories on the read-only root (so multiprocessing's
  semaphores, which need /dev/shm, do not work). The only writable place is the program's cwd,
  ``/tmp/sandbox-<random>``, its own size-limited tmpfs, which vanishes with the mount namespace.
* Privileges: the program process drops every capability from its bounding set, sets
  ``PR_SET_NO_NEW_PRIVS`` (setuid binaries and file capabilities grant nothing), clears
  supplementary groups and switches to an unprivileged uid/gid from 60000-64999, unique among the
  concurrent runs of this process (random start, so other scorer processes rarely collide).
* Limits: RLIMIT_AS (memory), RLIMIT_CPU (soft; the hard limit one second later kills), RLIMIT_FSIZE
  (max_output_bytes + 1: bounds stdout, stderr and every file it writes), RLIMIT_NOFILE, RLIMIT_CORE=0
  and RLIMIT_NPROC on its unique uid (max_processes; counts threads too, so a fork bomb fails with
  EAGAIN without hurting the machine; no cgroup is needed), plus the wall-clock timeout enforced
  by init (SIGKILL to the whole namespace). stdout and stderr go to unlinked temp files of the
  parent, so a program printing gigabytes is cut by RLIMIT_FSIZE and the parent reads at most
  max_output_bytes. The stack limit is left as inherited (8 MB here).
* The program runs as ``<base interpreter> -S -s -P /main.py`` with only PATH, LANG=C.UTF-8,
  PYTHONHASHSEED=0, PYTHONDONTWRITEBYTECODE=1, HOME and TMPDIR (its cwd). ``-I`` is not used because
  it implies ``-E``, which would ignore PYTHONHASHSEED (reproducible set/dict order); the environment
  is ours, so ``-E`` protects nothing, and ``-s -P`` give the rest of ``-I``. ``-S``: standard library
  only. The base interpreter (the venv's ``python`` resolves to it) is used so that the venv, inside
  the project tree, need not be exposed.
* If any of this setup fails (no namespaces, no root, pivot_root refused...), the result is
  ``sandbox_error`` with the reason; the program is never run unisolated.

What it defends against: reading or writing files of the scorer, the artifact store or the project;
deleting files anywhere; the network; signalling or ptracing the scorer; processes outliving the run;
exhausting processes, memory, CPU time or disk (up to the tmpfs size). What it does not: kernel
exploits (no seccomp filter; the whole syscall surface of an unprivileged process is reachable),
side channels and the load it puts on the shared CPUs while it runs; it still sees world-readable
system files (/etc, /usr) and host facts such as the kernel version and CPU count.
"""

from __future__ import annotations

import marshal
import os
import resource
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["SandboxLimits", "ProgramResult", "PROGRAM_STATUSES", "run_python", "run_python_many"]

PROGRAM_STATUSES = ("ok", "exit_nonzero", "timeout", "memory", "crashed", "sandbox_error")

_UID_FIRST, _UID_COUNT = 60000, 5000  # 60000-64999: Debian's "global allocation" range, unused here
_MAX_OPEN_FILES = 64
_MAX_DETAIL = 200
_STDERR_TAIL = 2000
_SETUP_GRACE_S = 10.0  # the parent's backstop on top of the timeout init enforces itself
_PROGRAM_PATH = "/main.py"  # on the read-only root, so it is not in the program's own cwd


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 2.0  # wall clock per program run
    memory_mb: int = 256  # RLIMIT_AS
    cpu_s: int = 2  # RLIMIT_CPU
    max_processes: int = 16  # RLIMIT_NPROC of the run's unique uid (processes and threads)
    max_output_bytes: int = 1 << 20  # stdout captured at most this much (and RLIMIT_FSIZE)


@dataclass(frozen=True)
class ProgramResult:
    status: str  # one of PROGRAM_STATUSES
    returncode: int | None  # exit code, or -signal; None for timeout and sandbox_error
    stdout: bytes  # at most max_output_bytes
    stderr_tail: str  # last ~2000 chars of stderr
    detail: str  # short human-readable reason, at most 200 chars
    wall_s: float  # the program's own wall time (the whole call's for sandbox_error)


# The helper, run as root with ``-I -S -c``; argv: config fd, report fd. It writes lines to the
# report pipe: "error <reason>" when setup fails, and init's "done <kind> <value> <cpu_s> <wall_s>".
# Only this helper and init ever hold the pipe: it is close-on-exec, so the program never has it.
_HELPER = r'''
import ctypes, marshal, os, resource, sys, time
import _signal as signal  # not "signal": it imports enum, a few ms per run

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 4096, 16384, 1 << 18, 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
ROOT = "/tmp"  # where the new root is assembled, inside our private mount namespace

libc = ctypes.CDLL(None, use_errno=True)
report_fd = int(sys.argv[2])
os.set_inheritable(report_fd, False)
with open(int(sys.argv[1]), "rb") as fh:
    cfg = marshal.loads(fh.read())


class SetupError(Exception):
    pass


def report(line):
    os.write(report_fd, (line + "\n").encode("utf-8", "replace"))


def check(ret, what):
    if ret != 0:
        raise SetupError("%s: %s" % (what, os.strerror(ctypes.get_errno())))


def prctl(option, arg):
    return libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


def mount(source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()
    check(libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), "mount " + target)


def bind_ro(source, target, flags=MS_NOSUID | MS_NODEV):
    # A bind mount takes its flags from a remount of the bind, not from the first call.
    mount(source, target, None, MS_BIND)
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)


def build_root():
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount propagates to the host
    mount("tmpfs", ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    for path, target in cfg["symlinks"]:
        os.symlink(target, ROOT + path)
    for path in cfg["binds"]:
        os.makedirs(ROOT + path, mode=0o755, exist_ok=True)
        bind_ro(path, ROOT + path)
    for path in cfg["hide"]:
        mount("tmpfs", ROOT + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0")
    for path in ("/dev", "/proc", "/tmp", "/var/tmp", "/dev/shm", "/run"):
        os.makedirs(ROOT + path, mode=0o755, exist_ok=True)
    for name in ("null", "zero", "full", "random", "urandom"):
        open(ROOT + "/dev/" + name, "w").close()
        bind_ro("/dev/" + name, ROOT + "/dev/" + name, MS_NOSUID | MS_NOEXEC)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, ROOT + "/dev/" + name)
    mount("proc", ROOT + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # we are pid 1: this ns only
    work = ROOT + cfg["workdir"]
    os.mkdir(work, 0o700)
    mount("tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV,
          "size=%d,nr_inodes=4096,mode=700,uid=%d,gid=%d" % (cfg["work_bytes"], cfg["uid"], cfg["uid"]))
    with open(ROOT + cfg["program_path"], "wb") as fh:
        fh.write(cfg["program"])
    os.chmod(ROOT + cfg["program_path"], 0o644)
    mount(None, ROOT, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    # pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves no way back.
    os.chdir(ROOT)
    machine = os.uname().machine
    if machine not in SYS_PIVOT_ROOT:
        raise SetupError("pivot_root: unknown syscall number on " + machine)
    number = SYS_PIVOT_ROOT[machine]
    check(libc.syscall(ctypes.c_long(number), b".", b"."), "pivot_root")
    check(libc.umount2(b".", MNT_DETACH), "detach old root")
    os.chdir("/")
    check(libc.sethostname(b"sandbox", ctypes.c_size_t(7)), "sethostname")


def exec_program():
    """The program's process (pid 2): drop everything, then exec the interpreter."""
    try:
        uid = cfg["uid"]
        os.chdir(cfg["workdir"])
        for name, value in cfg["rlimits"]:
            resource.setrlimit(getattr(resource, name), value)
        for cap in range(64):
            if prctl(PR_CAPBSET_DROP, cap) != 0:
                break  # EINVAL: past the last capability this kernel knows
        check(prctl(PR_SET_NO_NEW_PRIVS, 1), "no_new_privs")
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from root to non-root for all three uids: capabilities are gone
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)  # ignored signals would stay ignored across exec
        os.execve(cfg["interpreter"], cfg["argv"], cfg["env"])
    except BaseException as exc:
        report("error starting the program: %s" % exc)
    os._exit(127)


def init():
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # helper killed by the parent's backstop: the ns goes too
    try:
        build_root()
    except (SetupError, OSError) as exc:
        report("error " + str(exc))
        os._exit(1)
    timed_out = []

    def on_alarm(*_):
        timed_out.append(True)
        os.kill(-1, signal.SIGKILL)  # from pid 1: every other process of the namespace

    signal.signal(signal.SIGALRM, on_alarm)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        exec_program()
    signal.setitimer(signal.ITIMER_REAL, cfg["timeout_s"])
    while True:  # also reap orphans reparented to us
        wpid, status, usage = os.wait4(-1, 0)
        if wpid == pid:
            break
    signal.setitimer(signal.ITIMER_REAL, 0)
    wall = time.monotonic() - start
    if timed_out:
        kind = "timeout 0"
    elif os.WIFSIGNALED(status):
        kind = "signal %d" % os.WTERMSIG(status)
    else:
        kind = "exit %d" % os.WEXITSTATUS(status)
    report("done %s %.3f %.3f" % (kind, usage.ru_utime + usage.ru_stime, wall))
    os._exit(0)  # the kernel now kills whatever the program left behind


def main():
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the scorer died: do not run on
    try:
        check(libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS),
              "unshare namespaces")
        pid = os.fork()
    except (SetupError, OSError) as exc:
        report("error " + str(exc))
        os._exit(1)
    if pid == 0:
        init()
    os.waitpid(pid, 0)  # returns only when the whole pid namespace is gone
    os._exit(0)


main()
'''


def _short(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@lru_cache(maxsize=1)
def _layout() -> tuple[str, tuple, tuple]:
    """(base interpreter, top-level symlinks, read-only binds) of the sandbox's root."""
    # The venv's python is a symlink to the base interpreter; running that one keeps the venv
    # (inside the project tree) out of the sandbox.
    interpreter = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    symlinks, binds = [], []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc"):
        path = "/" + name
        if os.path.islink(path):
            symlinks.append((path, os.readlink(path)))
        elif os.path.isdir(path):
            binds.append(path)
    prefixes = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
    prefixes.add(os.path.dirname(os.path.dirname(interpreter)))
    for prefix in sorted(prefixes, key=len):
        if not any(_within(prefix, b) for b in binds):
            binds.append(prefix)
    return interpreter, tuple(symlinks), tuple(binds)


def _hidden(binds) -> list[str]:
    """Of TESSY_HOME, the cwd and /root: those an exposed bind would show, to cover with a tmpfs."""
    candidates = [os.environ.get("TESSY_HOME", ".tessy"), "/root"]
    try:
        candidates.append(os.getcwd())
    except OSError:
        pass
    hidden = set()
    for path in candidates:
        path = os.path.realpath(path)
        visible = any(_within(path, b) for b in binds)
        # A path holding a bind (a cwd of /usr, say) cannot be covered without hiding what the
        # interpreter needs; it is left as it is.
        if visible and not any(_within(b, path) for b in binds) and os.path.isdir(path):
            hidden.add(path)
    return sorted(hidden, key=len)


_uid_lock = threading.Lock()
_uids_in_use: set[int] = set()


@contextmanager
def _unique_uid():
    # Unique per concurrent run of this process, so RLIMIT_NPROC is per run. A random start makes
    # collisions with other scorer processes unlikely (they would only share the process budget:
    # their runs cannot see each other).
    with _uid_lock:
        start = secrets.randbelow(_UID_COUNT)
        candidates = (_UID_FIRST + (start + i) % _UID_COUNT for i in range(_UID_COUNT))
        uid = next((u for u in candidates if u not in _uids_in_use), None)
        if uid is None:
            raise OSError("no free sandbox uid")
        _uids_in_use.add(uid)
    try:
        yield uid
    finally:
        with _uid_lock:
            _uids_in_use.discard(uid)


def _check_limits(limits) -> None:
    if not isinstance(limits, SandboxLimits):
        raise ValueError(f"limits must be a SandboxLimits, got {type(limits).__name__}")
    if not (limits.timeout_s > 0 and limits.memory_mb > 0 and limits.cpu_s > 0
            and limits.max_processes > 0 and limits.max_output_bytes > 0):
        raise ValueError(f"limits must all be positive, got {limits}")


def _check_program(program, stdin) -> None:
    if not isinstance(program, str):
        raise ValueError(f"program must be a str, got {type(program).__name__}")
    if not isinstance(stdin, (bytes, bytearray)):
        raise ValueError(f"stdin must be bytes, got {type(stdin).__name__}")


def _config(program: str, uid: int, limits: SandboxLimits) -> dict:
    interpreter, symlinks, binds = _layout()
    workdir = f"/tmp/sandbox-{secrets.token_hex(4)}"
    memory = limits.memory_mb * 1024 * 1024
    fsize = limits.max_output_bytes + 1  # one byte more than we keep: tells "cut" from "exactly full"
    return {
        "program": program.encode("utf-8", "surrogatepass"),
        "program_path": _PROGRAM_PATH,
        "interpreter": interpreter,
        "argv": [interpreter, "-S", "-s", "-P", _PROGRAM_PATH],
        "env": {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
                "PYTHONDONTWRITEBYTECODE": "1", "HOME": workdir, "TMPDIR": workdir},
        "symlinks": list(symlinks),
        "binds": list(binds),
        "hide": _hidden(binds),
        "workdir": workdir,
        "work_bytes": max(memory, 4 * fsize),
        "uid": uid,
        "timeout_s": float(limits.timeout_s),
        "rlimits": [
            ("RLIMIT_AS", (memory, memory)),
            # Soft limit sends SIGXCPU; the hard limit (1 s later) SIGKILLs if it is ignored.
            ("RLIMIT_CPU", (limits.cpu_s, limits.cpu_s + 1)),
            ("RLIMIT_FSIZE", (fsize, fsize)),
            ("RLIMIT_NOFILE", (_MAX_OPEN_FILES, _MAX_OPEN_FILES)),
            ("RLIMIT_CORE", (0, 0)),
            ("RLIMIT_NPROC", (limits.max_processes, limits.max_processes)),
        ],
    }


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _stderr_tail(err) -> str:
    size = err.seek(0, os.SEEK_END)
    err.seek(max(0, size - 4 * _STDERR_TAIL))  # enough bytes for 2000 chars of UTF-8
    return err.read().decode("utf-8", errors="replace")[-_STDERR_TAIL:]


def _classify(report: str, stdout_size: int, stderr_tail: str, limits: SandboxLimits):
    """(status, returncode, detail, program wall_s or None) from the helper's report lines."""
    lines = report.splitlines()
    errors = [line[len("error "):] for line in lines if line.startswith("error ")]
    if errors:
        return "sandbox_error", None, "sandbox setup failed: " + errors[0], None
    done = next((line.split() for line in lines if line.startswith("done ")), None)
    if done is None or len(done) != 5:
        last = stderr_tail.strip().splitlines()[-1:] or ["no report"]
        return "sandbox_error", None, "sandbox helper failed: " + last[0], None
    kind, value, cpu, wall = done[1], int(done[2]), float(done[3]), float(done[4])
    if kind == "timeout":
        return "timeout", None, f"exceeded the wall-clock limit of {limits.timeout_s}s", wall
    returncode = -value if kind == "signal" else value
    if kind == "signal" and (value == signal.SIGXCPU or (value == signal.SIGKILL and cpu >= limits.cpu_s)):
        return "timeout", returncode, f"exceeded the CPU limit of {limits.cpu_s}s", wall
    if stdout_size > limits.max_output_bytes:
        return "crashed", returncode, f"printed more than the {limits.max_output_bytes} byte output limit", wall
    if kind == "signal":
        return "crashed", returncode, f"killed by {_signal_name(value)}", wall
    if value == 0:
        return "ok", 0, "exited with code 0", wall
    last = stderr_tail.strip().splitlines()[-1:] or [""]
    if last[0].startswith("MemoryError"):
        return "memory", returncode, f"ran out of memory (limit {limits.memory_mb} MB)", wall
    return "exit_nonzero", returncode, f"exited with code {value}" + (f": {last[0]}" if last[0] else ""), wall


def run_python(program: str, stdin: bytes = b"", limits: SandboxLimits = SandboxLimits()) -> ProgramResult:
    """Run ``program`` (Python source, a whole program: may read stdin, print, import the standard
    library, define classes) in a fresh isolated sandbox; never raises for anything the program does.

    Raises ValueError only for bad arguments.
    """
    _check_program(program, stdin)
    _check_limits(limits)
    start = time.monotonic()
    try:
        with _unique_uid() as uid, tempfile.TemporaryFile() as cfg_file, tempfile.TemporaryFile() as in_file, \
                tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            # Regular files rather than pipes: no deadlock on a program that never reads its stdin,
            # and RLIMIT_FSIZE caps how much the program can make us read.
            cfg_file.write(marshal.dumps(_config(program, uid, limits)))
            cfg_file.seek(0)
            in_file.write(stdin)
            in_file.seek(0)
            report = _spawn(cfg_file.fileno(), in_file, out, err, limits)
            out.seek(0)
            stdout = out.read(limits.max_output_bytes + 1)
            stderr_tail = _stderr_tail(err)
    except (OSError, subprocess.SubprocessError) as exc:
        return ProgramResult("sandbox_error", None, b"", "", _short(f"sandbox setup failed: {exc}"),
                             time.monotonic() - start)
    status, returncode, detail, wall = _classify(report, len(stdout), stderr_tail, limits)
    return ProgramResult(status, returncode, stdout[: limits.max_output_bytes], stderr_tail, _short(detail),
                         wall if wall is not None else time.monotonic() - start)


def _spawn(cfg_fd: int, stdin, stdout, stderr, limits: SandboxLimits) -> str:
    """Run the helper to completion; its report lines."""
    interpreter = _layout()[0]
    read_end, write_end = os.pipe()
    try:
        try:
            proc = subprocess.Popen(
                [interpreter, "-I", "-S", "-c", _HELPER, str(cfg_fd), str(write_end)],
                stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=(cfg_fd, write_end),
                cwd="/", env={}, close_fds=True,
            )
        finally:
            os.close(write_end)  # so the read end sees EOF once the helper and init are gone
        try:
            report = _read_report(read_end, time.monotonic() + limits.timeout_s + _SETUP_GRACE_S)
        except BaseException:  # e.g. KeyboardInterrupt: do not leave the run behind
            proc.kill()
            proc.wait()
            raise
        if report is None:
            proc.kill()  # init follows through its parent-death signal
            proc.wait()
            return "error the sandbox did not finish within the timeout plus grace"
        proc.wait()
        return report
    finally:
        os.close(read_end)


def _read_report(fd: int, deadline: float) -> str | None:
    """Everything written to the report pipe, once the helper and init have exited (EOF); None
    at the deadline. Unlike Popen.wait(timeout), which polls with sleeps of up to 50 ms, this
    returns as soon as they are gone."""
    poller = select.poll()  # not select.select: fds above 1024 in a busy scorer
    poller.register(fd, select.POLLIN)
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks).decode("utf-8", errors="replace")
        chunks.append(chunk)


def run_python_many(
    jobs: list[tuple[str, bytes]],
    limits: SandboxLimits = SandboxLimits(),
    workers: int = 2,
) -> list[ProgramResult]:
    """run_python for each (program, stdin) job; results in job order."""
    _check_workers(workers)
    if not isinstance(jobs, list):
        raise ValueError("jobs must be a list of (program, stdin) pairs")
    for i, job in enumerate(jobs):
        if not (isinstance(job, (tuple, list)) and len(job) == 2):
            raise ValueError(f"jobs[{i}] must be a (program, stdin) pair")
        _check_program(*job)
    _check_limits(limits)
    # Threads are enough: the work happens in the child processes.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: run_python(job[0], bytes(job[1]), limits), jobs))


def _check_workers(workers) -> None:
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
