"""The warm interpreter behind warm_start.py: a process that has imported TensorFlow, MLflow
and the other heavy libraries once, and forks a child for each stage handed to it. The child
becomes the stage (the client's directory, environment, arguments, streams and Python path,
then `runpy` of the stage module) and its exit code goes back to the client.

Run as a script (`python warm_server.py SOCKET IDLE_SECONDS LOCK_FD WHEN PYTHONPATH
PRELOAD...`), it holds only the standard library and the preloads: project code would go
stale while it idles. Started "now", LOCK_FD is the socket's start lock, released once it
listens (or dies): nobody starts a second server while this one imports, and stages wait
for it. Started in the "background", ahead of need, it imports at the lowest priority and
holds no start lock meanwhile (LOCK_FD keeps a second one from starting in the background):
a stage that comes first starts its own rather than wait on a core it may never get, and
this one listens only if none does by the time it is ready.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import gc
import importlib
import json
import os
import runpy
import signal
import socket
import struct
import sys
import threading
import time

# how a message travels: 4-byte big-endian length, then that many bytes
_LENGTH = struct.Struct(">I")


def send_message(conn: socket.socket, payload: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(payload).encode()
    if fds:
        socket.send_fds(conn, [_LENGTH.pack(len(data)) + data], fds)
    else:
        conn.sendall(_LENGTH.pack(len(data)) + data)


def receive_message(conn: socket.socket, max_fds: int = 0) -> tuple[dict, list[int]] | None:
    """The next message and the descriptors sent with it; None when the peer has gone."""
    fds: list[int] = []
    if max_fds:
        head, fds, _, _ = socket.recv_fds(conn, _LENGTH.size, max_fds)
    else:
        head = conn.recv(_LENGTH.size)
    if not head:
        return None
    head += _receive_exactly(conn, _LENGTH.size - len(head))
    (length,) = _LENGTH.unpack(head)
    return json.loads(_receive_exactly(conn, length)), fds


def _receive_exactly(conn: socket.socket, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = conn.recv(size)
        if not chunk:
            raise ConnectionError("the peer closed the connection mid-message")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def is_listening(path: str) -> bool:
    try:
        open_connection(path).close()
    except OSError:
        return False
    return True


def open_connection(path: str) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        raise
    return conn


def serve(
    path: str,
    idle_seconds: float,
    lock_fd: int,
    python_path: str,
    preload: list[str],
    background: bool = False,
) -> None:
    sys.path[1:1] = [entry for entry in python_path.split(os.pathsep) if entry]
    _name_the_process(path, preload)
    if background:
        _at_lowest_priority(_import, preload)
        background_lock, lock_fd = lock_fd, _claim(path)
        os.close(background_lock)
        if lock_fd is None:
            return  # a stage came first and started a server of its own: it serves
    else:
        _import(preload)
    # Everything loaded so far lives as long as the server: out of the collector's sight, a
    # stage's full collections skip it (0.7 s each with TensorFlow's objects, 0.06 s without)
    # and its pages stay shared with the stage instead of being copied when they're walked
    gc.collect()
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # bound under a temporary name and renamed: a client never connects to a half-made server
    temporary = f"{path}.{os.getpid()}"
    listener.bind(temporary)
    listener.listen(16)
    os.rename(temporary, path)
    bound = os.stat(path).st_ino
    os.close(lock_fd)  # its taker has closed its own descriptor: this frees the lock
    stages = _Stages(path, preload, idle_seconds)

    def stop(signum: int, frame: object) -> None:
        # `keras-exercises warm stop`: no new stage, and the running ones end as they would
        stages.stopping = True
        if stages.accepting:  # out of accept(), which would otherwise wait on
            raise _Stopped

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGCHLD, lambda signum, frame: stages.reap())
    try:
        while not stages.stopping:
            left = stages.idle_left()
            if left == 0:
                return  # idle long enough since the last stage ended: the next starts anew
            # never without a timeout: a stage that ends starts the idle time, and only a
            # timeout comes back to look at it
            listener.settimeout(idle_seconds if left is None else left)
            stages.accepting = True
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except _Stopped:
                break
            finally:
                stages.accepting = False
            stages.start(conn)
    finally:
        # only this server's own socket: a newer server may have taken the path since
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == bound:
                os.unlink(path)
        listener.close()
        stages.wait_all()
        stages.forget()


class _Stopped(Exception):
    """SIGTERM while the server waits for a stage."""


class _Stages:
    """The stages this server runs: each a forked child, whose exit status goes back to its
    client once the server has reaped it (a stage killed by a signal cannot say so itself),
    and the state `keras-exercises warm` reads: pid, what it holds, its idle time."""

    def __init__(self, path: str, preload: list[str], idle_seconds: float) -> None:
        self.state = f"{path}.json"
        self.preload, self.idle_seconds = preload, idle_seconds
        self.running: dict[int, socket.socket] = {}
        self.stopping = self.accepting = False
        self.last_end = time.time()
        self._write()

    def start(self, conn: socket.socket) -> None:
        # the stage may end before the server has noted it: its SIGCHLD waits until then
        held = {signal.SIGCHLD, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            pid = os.fork()
            if pid == 0:
                for signum in held:  # the server's own handlers are not the stage's
                    signal.signal(signum, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
                _become_stage(conn)  # never returns
            self.running[pid] = conn
            self._write()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.running.pop(pid, None)
            if conn is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(OSError):  # its client is gone: nobody to tell
                send_message(conn, {"exit": code if code >= 0 else 128 - code})
            conn.close()
            self.last_end = time.time()
            self._write()

    def idle_left(self) -> float | None:
        """Seconds until this server idles out; None while a stage runs."""
        if self.running:
            return None
        return max(0.0, self.last_end + self.idle_seconds - time.time())

    def wait_all(self) -> None:
        while self.running:
            signal.sigtimedwait({signal.SIGCHLD}, 1.0)
            self.reap()

    def forget(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.state)

    def _write(self) -> None:
        state = {
            "pid": os.getpid(),
            "python": sys.executable,
            "kind": _kind(self.preload),
            "stages": len(self.running),
            "last_end": self.last_end,
            "idle_seconds": self.idle_seconds,
        }
        temporary = f"{self.state}.{os.getpid()}"
        with open(temporary, "w") as file:
            json.dump(state, file)
        os.replace(temporary, self.state)


def _name_the_process(path: str, preload: list[str]) -> None:
    """What `ps` shows: what this is, for which Python, and where its socket is, not a
    script's path and its arguments."""
    import setproctitle

    setproctitle.setproctitle(
        f"keras-exercises warm interpreter ({_kind(preload)}; Python {sys.version.split()[0]} at "
        f"{sys.executable}; in {os.path.dirname(path)}): `keras-exercises warm` lists, "
        "`keras-exercises warm stop` ends"
    )


def _kind(preload: list[str]) -> str:
    """What a server holds, for people: the first library it preloads."""
    return preload[0].partition(":")[0] if preload else "nothing"


def _import(preload: list[str]) -> None:
    for entry in preload:
        # "module:function" also calls function(): work a library defers to its first use
        # and then keeps for the process, done once here instead of in every stage;
        # "module?": imported where it is installed (an optional extra's)
        module, _, function = entry.partition(":")
        name = module.removesuffix("?")
        try:
            imported = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if module.endswith("?") and exc.name == name:
                continue
            raise
        if function:
            getattr(imported, function)()


def _at_lowest_priority(work, *args) -> None:
    """work(*args) in a thread of nice 19, so that it takes only a core nothing else wants
    and slows no stage. A thread, not the process: a process cannot raise its own priority
    again without privileges, and the stages forked later from the main thread must run at
    their usual one."""
    failed: list[BaseException] = []

    def run() -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # Linux: this thread
        try:
            work(*args)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


def _claim(path: str) -> int | None:
    """The socket's start lock, taken once no server is starting; None if one listens."""
    lock_fd = os.open(f"{path}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)  # a server started for a stage holds it till it listens
    if is_listening(path):
        os.close(lock_fd)
        return None
    return lock_fd


def _become_stage(conn: socket.socket) -> None:
    """The child: the client's streams, directory, environment and arguments, then the
    stage; its exit status reaches the client through the server, which reaps it."""
    code = 1
    try:
        message = receive_message(conn, max_fds=3)
        if message is None:
            os._exit(1)
        request, fds = message
        try:
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            sys.path[:] = request["path"]
            sys.argv[:] = request["argv"]
            # in `ps`, what a process of its own shows, not the server's name it inherited
            command = [sys.executable, "-m", request["module"], *sys.argv[1:]]
            sys.modules["setproctitle"].setproctitle(" ".join(command))
            # the streams were made for the server's /dev/null: buffer as the client's would
            line_buffered = not os.environ.get("PYTHONUNBUFFERED")
            sys.stdout.reconfigure(line_buffering=os.isatty(1) and line_buffered)
            sys.stdout.reconfigure(write_through=not line_buffered)
        except BaseException as exc:
            # the client runs the stage itself, and says why
            send_message(conn, {"error": f"{type(exc).__name__}: {exc}"})
            os._exit(1)
        _customize()
        # a group of its own, which it takes along when it dies with its client: what it
        # started (a stage runner's `dvc repro` and the stage under it) ends with it
        os.setpgid(0, 0)
        send_message(conn, {"pid": os.getpid()})
        threading.Thread(target=_die_with_client, args=(conn,), daemon=True).start()
        code = _run(request["module"])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _customize() -> None:
    """What Python's site module does at start-up, which the server's start-up did without
    the stage's path and environment: import sitecustomize and usercustomize, if any, and,
    as site does, report one that fails and go on."""
    for name in ("sitecustomize", "usercustomize"):
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # there being none is no failure; its own imports failing is
            if not (isinstance(exc, ImportError) and exc.name == name):
                print(
                    f"Error in {name}; set PYTHONVERBOSE for traceback:\n"
                    f"{type(exc).__name__}: {exc}",
                    file=sys.stderr,
                )


def _run(module: str) -> int:
    """The stage module as `python -m` runs it, and the exit code it would give."""
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    # what the interpreter does at exit: wait for the threads that are not daemons, then
    # the atexit handlers (MLflow ends its runs there)
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    return code


def _die_with_client(conn: socket.socket) -> None:
    """A client killed outright (SIGKILL) cannot forward the signal: its connection closing
    is the sign. The stage and what it started die the same way, as they would have in the
    client's place (its process group ended, as the sweep's tether ends one)."""
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    os.killpg(0, signal.SIGKILL)


if __name__ == "__main__":
    path, idle, lock, when, python_path, *preload = sys.argv[1:]
    serve(path, float(idle), int(lock), python_path, preload, background=when == "background")
