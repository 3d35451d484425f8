"""Tests for the code-execution sandbox; these start real subprocesses."""

import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tessy_dagster.evaluate.function_tests import run_tests
from tessy_dagster.evaluate.sandbox import PROGRAM_STATUSES, ProgramResult, SandboxLimits, run_python, run_python_many

DOUBLE_TESTS = [(1, 2), (2, 4), (3, 6)]


def _unshare_net_works() -> bool:
    # The sandbox ignores a failed unshare; this test only makes sense where it works.
    probe = "import ctypes; raise SystemExit(ctypes.CDLL(None).unshare(0x40000000) != 0)"
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0


def _processes_with(marker: str) -> list[int]:
    """Host pids of live (not zombie) processes whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # exited meanwhile
        if marker.encode() in cmdline and state not in ("Z", "X"):
            found.append(int(entry))
    return found


def _processes_of_uid(uid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def _failed(result: ProgramResult) -> bool:
    return result.status != "ok" and result.status in PROGRAM_STATUSES and result.detail


# ---- Isolation seen through function_tests.run_tests (its verdicts: test_function_tests.py) ----


def test_socket_connection_fails_inside_sandbox():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = (
            "import socket\n"
            "def f(x):\n"
            "    try:\n"
            f"        socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            "    except OSError:\n"
            "        return -1\n"
            "    return 1\n"
        )
        result = run_tests(code, "f", [(0, -1)])
    assert result.passed, result.detail


@pytest.mark.skipif(not _unshare_net_works(), reason="network namespaces not permitted here")
def test_raw_socket_bypassing_the_patch_is_still_isolated():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = (
            "import _socket\n"
            "def f(x):\n"
            "    s = _socket.socket()\n"
            "    try:\n"
            f"        s.connect(('127.0.0.1', {port}))\n"
            "    except OSError:\n"
            "        return -1\n"
            "    return 1\n"
        )
        result = run_tests(code, "f", [(0, -1)])
    assert result.passed, result.detail


def test_files_stay_in_a_temp_dir_that_is_removed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = (
        "import os\n"
        "def f(x):\n"
        "    with open('leak.txt', 'w') as fh:\n"
        "        fh.write('hello')\n"
        "    return os.getcwd() if x == 1 else len(os.listdir('.'))\n"
    )
    result = run_tests(code, "f", [(0, 1), (1, 0)])
    assert result.status == "failed" and result.n_passed == 1
    sandbox_cwd = result.detail.split("got ")[1].strip("'")
    assert sandbox_cwd != str(tmp_path)
    assert not os.path.exists(sandbox_cwd)
    assert list(tmp_path.iterdir()) == []


def test_large_file_write_is_refused():
    code = "def f(x):\n    open('big', 'w').write('x' * 3_000_000)\n    return 2 * x\n"
    result = run_tests(code, "f", DOUBLE_TESTS)
    assert result.status == "error"
    assert "File too large" in result.detail


def test_spawned_grandchildren_are_killed():
    # Changed with the pid namespace: the pid the program sees is not a host pid, so the test looks
    # for the child by a marker in its command line instead of by pid.
    marker = f"tessy-grandchild-{secrets.token_hex(8)}"
    code = (
        "import os, time\n"
        "def f(x):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        f"        os.execv('/bin/sleep', ['{marker}', '60'])\n"
        "    for _ in range(200):\n"  # report 1 once the child runs under its marker
        "        try:\n"
        "            if open('/proc/%d/cmdline' % pid, 'rb').read().startswith(b'tessy-'):\n"
        "                return 1\n"
        "        except OSError:\n"
        "            pass\n"
        "        time.sleep(0.01)\n"
        "    return 0\n"
    )
    result = run_tests(code, "f", [(0, 1)])
    assert result.passed, result.detail  # the grandchild was running while f returned
    assert _processes_with(marker) == []


# ---- Whole programs: run_python ----


def test_program_reads_stdin_and_prints():
    program = "import sys\nnums = list(map(int, sys.stdin.read().split()))\nprint(sum(nums), max(nums))\n"
    result = run_python(program, b"3 1 4 1 5\n")
    assert result.status == "ok" and result.returncode == 0, result
    assert result.stdout == b"14 5\n"
    assert result.stderr_tail == ""
    assert result.wall_s > 0


def test_program_with_classes_stdlib_and_input():
    program = (
        "import heapq, collections, math, json, re, itertools, functools, bisect, sys\n"
        "class Graph:\n"
        "    def __init__(self):\n"
        "        self.adj = collections.defaultdict(list)\n"
        "    def add(self, a, b, w):\n"
        "        self.adj[a].append((b, w))\n"
        "        self.adj[b].append((a, w))\n"
        "    def dijkstra(self, src):\n"
        "        dist, heap = {src: 0}, [(0, src)]\n"
        "        while heap:\n"
        "            d, u = heapq.heappop(heap)\n"
        "            if d > dist[u]:\n"
        "                continue\n"
        "            for v, w in self.adj[u]:\n"
        "                if d + w < dist.get(v, math.inf):\n"
        "                    dist[v] = d + w\n"
        "                    heapq.heappush(heap, (d + w, v))\n"
        "        return dist\n"
        "n, m = map(int, input().split())\n"
        "g = Graph()\n"
        "for _ in range(m):\n"
        "    a, b, w = map(int, sys.stdin.readline().split())\n"
        "    g.add(a, b, w)\n"
        "dist = g.dijkstra(1)\n"
        "print(' '.join(str(dist.get(i, -1)) for i in range(1, n + 1)))\n"
        "print(json.dumps({'words': re.findall(r'[a-z]+', 'ab, cd')}))\n"
        "print(list(itertools.accumulate([1, 2, 3])), functools.reduce(lambda a, b: a * b, [1, 2, 3, 4]))\n"
        "print(bisect.bisect_left([1, 3, 5], 4))\n"
    )
    result = run_python(program, b"4 3\n1 2 5\n2 3 1\n1 3 9\n")
    assert result.status == "ok", result
    assert result.stdout.decode().splitlines() == ["0 5 6 -1", '{"words": ["ab", "cd"]}', "[1, 3, 6] 24", "2"]


def test_deep_recursion_with_setrecursionlimit():
    program = (
        "import sys\n"
        "sys.setrecursionlimit(100000)\n"
        "def depth(n):\n"
        "    return 0 if n == 0 else 1 + depth(n - 1)\n"
        "print(depth(50000))\n"
    )
    result = run_python(program)
    assert result.status == "ok", result
    assert result.stdout == b"50000\n"


def test_exit_codes_and_exceptions():
    assert run_python("raise SystemExit(0)").status == "ok"
    result = run_python("import sys\nprint('partial')\nsys.exit(3)\n")
    assert (result.status, result.returncode, result.stdout) == ("exit_nonzero", 3, b"partial\n")
    assert result.detail == "exited with code 3"
    result = run_python("print(1 // 0)")
    assert (result.status, result.returncode) == ("exit_nonzero", 1)
    assert "ZeroDivisionError" in result.detail and "ZeroDivisionError" in result.stderr_tail
    result = run_python("def f(:\n")
    assert result.status == "exit_nonzero" and "SyntaxError" in result.stderr_tail


def test_killed_by_a_signal_is_crashed():
    result = run_python("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    assert (result.status, result.returncode, result.detail) == ("crashed", -signal.SIGSEGV, "killed by SIGSEGV")


def test_program_limits():
    result = run_python("import time\ntime.sleep(30)\n", limits=SandboxLimits(timeout_s=0.5))
    assert (result.status, result.returncode) == ("timeout", None)
    assert result.detail == "exceeded the wall-clock limit of 0.5s"
    result = run_python("while True:\n    pass\n", limits=SandboxLimits(timeout_s=5, cpu_s=1))
    assert result.status == "timeout" and result.detail == "exceeded the CPU limit of 1s"
    result = run_python("x = bytearray(10**9)\n")
    assert result.status == "memory" and "MemoryError" in result.stderr_tail


def test_output_is_cut_at_the_limit_and_reported():
    limits = SandboxLimits(max_output_bytes=1000)
    result = run_python("import sys\nwhile True:\n    sys.stdout.write('x' * 4096)\n", limits=limits)
    assert result.status == "crashed" and "output limit" in result.detail
    assert result.stdout == b"x" * 1000
    # Exactly at the limit is fine.
    result = run_python("import sys\nsys.stdout.write('y' * 1000)\n", limits=limits)
    assert result.status == "ok" and result.stdout == b"y" * 1000


def test_stderr_is_a_bounded_tail():
    result = run_python("import sys\nfor i in range(10000):\n    print('line', i, file=sys.stderr)\n")
    assert result.status == "ok"
    assert len(result.stderr_tail) <= 2000 and result.stderr_tail.endswith("line 9999\n")


def test_environment_is_minimal_and_the_user_unprivileged():
    program = (
        "import os, json\n"
        "status = dict(line.split(':\\t', 1) for line in open('/proc/self/status').read().splitlines()"
        " if ':\\t' in line)\n"
        "print(json.dumps({'env': dict(os.environ), 'uid': os.getuid(), 'gid': os.getgid(),"
        " 'groups': os.getgroups(), 'cwd': os.getcwd(), 'home': os.path.expanduser('~'),"
        " 'caps': [status[k].strip() for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')],"
        " 'nnp': status['NoNewPrivs'].strip(), 'pid': os.getpid(), 'hash': hash('abc')}))\n"
    )
    import json

    first, second = (json.loads(run_python(program).stdout) for _ in range(2))
    env = first["env"]
    assert set(env) == {"PATH", "LANG", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "HOME", "TMPDIR"}
    assert env["LANG"] == "C.UTF-8" and env["PYTHONHASHSEED"] == "0" and env["HOME"] == first["cwd"]
    assert first["hash"] == second["hash"]  # PYTHONHASHSEED=0 takes effect
    assert 60000 <= first["uid"] < 65000 and first["gid"] == first["uid"] and first["groups"] == []
    assert first["caps"] == ["0000000000000000"] * 5 and first["nnp"] == "1"
    assert first["pid"] == 2  # pid namespace: init is 1, the program 2


# ---- Attacks: each must come back as a result, never hurt the scorer or the machine ----


def test_cannot_write_outside_its_folder(tmp_path, monkeypatch):
    home = tmp_path / "tessy_home"
    home.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("TESSY_HOME", str(home))
    monkeypatch.chdir(cwd)
    name = f"tessy-escape-{secrets.token_hex(6)}"
    targets = [f"/tmp/{name}", str(cwd / name), f"/work/main/{name}", str(home / name), f"/{name}",
               f"/var/tmp/{name}", f"/dev/shm/{name}", f"/root/{name}", f"/etc/{name}", f"/usr/{name}"]
    program = (
        "import os\n"
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        with open(path, 'w') as fh:\n"
        "            fh.write('escaped')\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print('refused', path, exc.errno)\n"
        "open('inside.txt', 'w').write('fine')\n"  # its own folder is writable
        "print('inside', open('inside.txt').read())\n"
    )
    result = run_python(program)
    assert result.status == "ok", result
    lines = result.stdout.decode().splitlines()
    assert [line.split()[0] for line in lines] == ["refused"] * len(targets) + ["inside"]
    for path in targets:
        assert not os.path.exists(path), path
    assert list(cwd.iterdir()) == [] and list(home.iterdir()) == []


def test_cannot_delete_files_outside(tmp_path):
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("keep me")
    sentinel.chmod(0o666)
    world = tmp_path / "world_writable"
    world.mkdir()
    world.chmod(0o777)
    inner = world / "sentinel"
    inner.write_text("keep me too")
    inner.chmod(0o666)
    program = (
        "import os, shutil\n"
        f"for path in {[str(sentinel), str(inner)]!r}:\n"
        "    for attempt in (os.remove, lambda p: open(p, 'w').close()):\n"
        "        try:\n"
        "            attempt(path)\n"
        "            print('done', path)\n"
        "        except OSError:\n"
        "            print('refused')\n"
        f"shutil.rmtree({str(tmp_path)!r}, ignore_errors=True)\n"
        "for path in ('/main.py', '/etc/hostname', '/usr/bin/env'):\n"
        "    try:\n"
        "        os.remove(path)\n"
        "        print('done', path)\n"
        "    except OSError:\n"
        "        print('refused')\n"
    )
    result = run_python(program)
    assert result.status == "ok", result
    assert result.stdout.decode().split() == ["refused"] * 7
    assert sentinel.read_text() == "keep me" and inner.read_text() == "keep me too"
    assert os.path.exists("/etc/hostname") and os.path.exists("/usr/bin/env")


def test_cannot_read_the_artifact_store_or_the_project(tmp_path, monkeypatch):
    secret = f"tessy-secret-{secrets.token_hex(8)}"
    home = tmp_path / "tessy_home"
    (home / "benchmark").mkdir(parents=True)
    (home / "benchmark" / "expected.json").write_text(secret)
    cwd = tmp_path / "project"
    cwd.mkdir()
    (cwd / "answers.txt").write_text(secret)
    monkeypatch.setenv("TESSY_HOME", str(home))
    monkeypatch.chdir(cwd)
    paths = [str(home / "benchmark" / "expected.json"), str(cwd / "answers.txt"), "/work/main/pyproject.toml",
             "/root/.bashrc", "/proc/1/environ", "/proc/1/cwd/answers.txt"]
    program = (
        "import os\n"
        f"for path in {paths!r}:\n"
        "    try:\n"
        "        print(open(path).read())\n"
        "    except OSError as exc:\n"
        "        print('refused', exc.errno)\n"
        f"for folder in {[str(home), str(cwd), str(tmp_path), '/work', '/tmp']!r}:\n"
        "    try:\n"
        "        print(folder, os.listdir(folder))\n"
        "    except OSError as exc:\n"
        "        print('refused', exc.errno)\n"
        "print(sorted(os.listdir('/root')))\n"  # only the way to the interpreter's prefix, if under /root
    )
    result = run_python(program)
    assert result.status == "ok", result
    out = result.stdout.decode()
    assert secret not in out
    assert "tessy_home" not in out and "answers.txt" not in out and "expected.json" not in out
    lines = out.splitlines()
    assert all(line.startswith("refused") for line in lines[: len(paths)])
    assert lines[-1] in ("[]", "['.pyenv']")


def test_visible_tessy_home_and_cwd_are_covered(monkeypatch):
    # TESSY_HOME or the cwd under an exposed system folder get an empty tmpfs over them.
    if not (os.path.isdir("/etc/ssl") and os.path.isdir("/usr/share")):
        pytest.skip("needs /etc/ssl and /usr/share")
    monkeypatch.setenv("TESSY_HOME", "/etc/ssl")
    monkeypatch.chdir("/usr/share")
    program = (
        "import os\n"
        "print(os.listdir('/etc/ssl') if os.access('/etc/ssl', os.R_OK) else 'refused')\n"
        "print(os.listdir('/usr/share') if os.access('/usr/share', os.R_OK) else 'refused')\n"
        "print(len(os.listdir('/usr/bin')) > 0)\n"
    )
    result = run_python(program)
    assert result.status == "ok", result
    assert result.stdout.decode().split("\n")[:3] == ["refused", "refused", "True"]


def test_expected_outputs_never_reach_the_program():
    # The expected value exists only in the parent: a solution searching its whole heap cannot find it.
    expected = 987654321987
    code = (
        "import gc\n"
        "def f(x):\n"
        f"    target = {expected - 1} + 1\n"
        "    for obj in gc.get_objects():\n"
        "        values = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()\n"
        "        for value in values:\n"
        "            if type(value) is int and value == target and value is not target:\n"
        "                return value\n"
        "    return 0\n"
    )
    result = run_tests(code, "f", [(1, expected)])
    assert result.status == "failed" and result.n_passed == 0
    # Control: the same search does find the value when it is sent along, as an input.
    assert run_tests(code, "f", [(expected, expected)]).passed


@pytest.mark.parametrize(
    "attack",
    [
        "os.kill({pid}, signal.SIGKILL)",
        "os.killpg({pgid}, signal.SIGKILL)",
        "os.kill(-1, signal.SIGKILL)\nimport time\ntime.sleep(1)",
        "import subprocess\nsubprocess.run(['/bin/sh', '-c', 'kill -9 -1'])\nimport time\ntime.sleep(1)",
        "os.kill(1, signal.SIGKILL)\nos.kill(1, signal.SIGTERM)",  # its pid namespace's init (root)
    ],
)
def test_cannot_signal_the_scorer(attack):
    program = "import os, signal\n" + attack.format(pid=os.getpid(), pgid=os.getpgid(0)) + "\nprint('still here')\n"
    result = run_python(program)
    assert _failed(result), result  # the call raised or the program killed itself
    assert result.stdout == b""
    os.kill(os.getpid(), 0)  # we are alive
    assert run_python("print(1)").stdout == b"1\n"


@pytest.mark.parametrize("main_action", ["exit", "timeout"])
def test_no_process_survives_the_verdict(main_action):
    # A double-forked, setsid daemon that ignores SIGTERM and SIGHUP, sleeping under a unique marker.
    marker = f"tessy-daemon-{secrets.token_hex(8)}"
    program = (
        "import os, signal, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "        signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        f"        os.execv('/bin/sleep', ['{marker}', '300'])\n"
        "    os._exit(0)\n"
        "for _ in range(300):\n"
        "    if any(open('/proc/%s/cmdline' % p, 'rb').read().startswith(b'tessy-daemon-')\n"
        "           for p in os.listdir('/proc') if p.isdigit() and os.path.exists('/proc/%s/cmdline' % p)):\n"
        "        print('daemon running', flush=True)\n"
        "        break\n"
        "    time.sleep(0.01)\n"
        + ("time.sleep(60)\n" if main_action == "timeout" else "")
    )
    result = run_python(program, limits=SandboxLimits(timeout_s=1.0))
    assert result.stdout == b"daemon running\n", result
    assert result.status == ("ok" if main_action == "exit" else "timeout")
    assert _processes_with(marker) == []


def test_fork_bomb_is_contained():
    # Guarded: the bomb only goes off where the sandbox reports an unprivileged uid with a small
    # process limit; otherwise the program exits 99 and the test fails without bombing.
    program = (
        "import os, resource, sys\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)\n"
        "if os.getuid() == 0 or not 0 < hard <= 64:\n"
        "    sys.exit(99)\n"
        "print(os.getuid(), flush=True)\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        pass\n"
    )
    result = run_python(program, limits=SandboxLimits(timeout_s=2.0, max_processes=16))
    assert result.returncode != 99, "sandbox limits missing: bomb not run"
    assert result.status == "timeout", result
    uid = int(result.stdout.split()[0])
    assert _processes_of_uid(uid) == []
    assert subprocess.run(["true"]).returncode == 0  # the machine still starts processes
    assert run_python("print(1)").stdout == b"1\n"


def test_process_limit_counts_per_run():
    program = (
        "import os\n"
        "children = 0\n"
        "try:\n"
        "    for _ in range(100):\n"
        "        if os.fork() == 0:\n"
        "            import time; time.sleep(5); os._exit(0)\n"
        "        children += 1\n"
        "except OSError:\n"
        "    pass\n"
        "print(children)\n"
    )
    result = run_python(program, limits=SandboxLimits(max_processes=8))
    assert result.status == "ok", result
    assert 1 <= int(result.stdout) <= 7  # 8 processes in all, the program itself included


def test_no_network(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        program = (
            "import socket, _socket\n"
            "for make in (lambda: socket.create_connection(('127.0.0.1', %d), timeout=1),\n"
            "             lambda: _socket.socket().connect(('127.0.0.1', %d)),\n"
            "             lambda: socket.create_connection(('1.1.1.1', 53), timeout=1),\n"
            "             lambda: socket.getaddrinfo('example.com', 80),\n"
            "             lambda: socket.socket(socket.AF_INET6).connect(('::1', %d))):\n"
            "    try:\n"
            "        make()\n"
            "        print('connected')\n"
            "    except OSError as exc:\n"
            "        print('refused')\n"
            "print(open('/proc/net/dev').read().count(':'))\n"  # interfaces: loopback only
        ) % (port, port, port)
        result = run_python(program)
        server.settimeout(0.2)
        with pytest.raises(socket.timeout):
            server.accept()  # nothing ever reached the listener
    assert result.status == "ok", result
    assert result.stdout.decode().split() == ["refused"] * 5 + ["1"]


def test_cannot_escalate():
    program = (
        "import os\n"
        "for attempt in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: open('/etc/shadow').read(),\n"
        "                lambda: os.chroot('/'), lambda: os.mknod('x', 0o600 | 0o20000, os.makedev(1, 3)),\n"
        "                lambda: os.sched_setaffinity(1, {0})):\n"
        "    try:\n"
        "        attempt()\n"
        "        print('escalated')\n"
        "    except OSError:\n"
        "        print('refused')\n"
        "import subprocess\n"
        "print(subprocess.run(['id', '-u'], capture_output=True).stdout.decode().strip() != '0')\n"
    )
    result = run_python(program)
    assert result.status == "ok", result
    assert result.stdout.decode().split() == ["refused"] * 6 + ["True"]


def test_scratch_disk_is_bounded():
    program = (
        "i = 0\n"
        "try:\n"
        "    while True:\n"
        "        with open('f%d' % i, 'wb') as fh:\n"
        "            fh.write(b'x' * 1000000)\n"
        "        i += 1\n"
        "except OSError as exc:\n"
        "    print(i, exc.errno)\n"
    )
    result = run_python(program, limits=SandboxLimits(memory_mb=16, timeout_s=5))
    assert result.status == "ok", result
    count, errno = map(int, result.stdout.split())
    assert count <= 16 and errno == 28  # ENOSPC


def test_runs_are_isolated_from_each_other():
    program = "import os\nopen('mine', 'w').write('x')\nprint(os.getcwd(), os.listdir('/tmp'), os.listdir('.'))\n"
    results = run_python_many([(program, b"")] * 6, workers=3)
    assert all(r.status == "ok" for r in results)
    outs = [r.stdout.decode().split(" ", 1) for r in results]
    assert len({cwd for cwd, _ in outs}) == 6
    for cwd, rest in outs:
        assert rest.strip() == f"['{cwd.rsplit('/', 1)[1]}'] ['mine']"


def test_run_python_many_keeps_order():
    jobs = [("print(input()[::-1])", b"abc\n"), ("import sys\nsys.exit(2)", b""), ("print(2 + 2)", b"")]
    results = run_python_many(jobs, workers=2)
    assert [(r.status, r.stdout) for r in results] == [("ok", b"cba\n"), ("exit_nonzero", b""), ("ok", b"4\n")]


def test_sandbox_setup_failure_is_reported_not_run_unisolated(tmp_path):
    # Without CAP_SYS_ADMIN the namespaces cannot be made: the run must be a sandbox_error.
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root; this test removes a capability from a root child")
    probe = (
        "from tessy_dagster.evaluate.sandbox import run_python\n"
        "r = run_python(\"open('/tmp/unisolated-%s', 'w')\")\n"
        "print(r.status, r.detail)\n"
    ) % tmp_path.name
    out = subprocess.run(["setpriv", "--bounding-set=-sys_admin", "--", sys.executable, "-c", probe],
                         capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert out.stdout.startswith("sandbox_error sandbox setup failed: unshare namespaces"), out
    assert not os.path.exists(f"/tmp/unisolated-{tmp_path.name}")


@pytest.mark.parametrize(
    "args",
    [(None, b""), ("print(1)", "text"), ("print(1)", b"", SandboxLimits(max_processes=0)), ("print(1)", b"", None)],
)
def test_run_python_bad_arguments_raise_value_error(args):
    with pytest.raises(ValueError):
        run_python(*args)


def test_status_lists():
    assert set(PROGRAM_STATUSES) == {
        "ok", "exit_nonzero", "timeout", "memory", "crashed", "sandbox_error"}
    assert stat.S_IMODE(os.stat("/tmp").st_mode) == 0o1777  # the host's /tmp is untouched by the sandbox
