"""Fixtures for the bridge tests: a real rosbridge on 127.0.0.1, the ROS environment, the policy.

Every process runs in its own session on a free port with a random ROS_DOMAIN_ID and is
stopped by its PID (SIGINT, SIGTERM, SIGKILL). roslibpy's twisted reactor cannot restart in
one process, so its connections are closed per test and the reactor is stopped once, at the
end of the session.
"""

from __future__ import annotations

import logging
import random

import pytest
from bridge_helpers import Observer

from bridges import ros_env

log = logging.getLogger("tests.bridges")


@pytest.fixture(scope="session")
def policy(tiny_checkpoint):
    """The real policy, from the lead's tiny checkpoint (tests/conftest.py)."""
    from agent.policy import Policy

    return Policy.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="session")
def ros_environ(tmp_path_factory):
    """The ROS 2 environment from PyPI with a ROS_DOMAIN_ID of this session only."""
    domain = random.SystemRandom().randint(1, 100)
    return ros_env.ros_environment(domain_id=domain)


@pytest.fixture(scope="session")
def _reactor():
    """roslibpy's twisted reactor: started by the first connection, stopped once at the very end."""
    yield
    from bridges.bridge import terminate_reactor

    terminate_reactor()


class Rosbridge:
    """The Rust rosbridge server on 127.0.0.1:port (``--no-rosapi``); can be killed and restarted."""

    def __init__(self, env: dict, log_path) -> None:
        self.env, self.log_path = env, log_path
        self.port = ros_env.free_port()
        self.proc = None
        self.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = ros_env.start_rosbridge(self.port, env=self.env, log_path=self.log_path)

    def kill(self) -> None:
        """Die without a goodbye (SIGKILL), as a crashed server would."""
        self.proc.kill()
        self.proc.wait(timeout=5)

    def stop(self) -> None:
        if self.proc is not None:
            ros_env.stop_process(self.proc)


@pytest.fixture
def rosbridge(ros_environ, tmp_path, _reactor):
    server = Rosbridge(ros_environ, tmp_path / "rosbridge.log")
    yield server
    server.stop()


@pytest.fixture
def start_node(ros_environ, tmp_path):
    """Start ``python -m bridges.sim_robot_node ARGS`` in its own session; stopped by PID afterwards."""
    procs = []

    def start(args: list[str], name: str = "node"):
        proc = ros_env.start_python_node(
            "bridges.sim_robot_node", args, ros_environ, tmp_path / f"{name}.log"
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        ros_env.stop_process(proc)


@pytest.fixture
def observer(rosbridge):
    obs = Observer(rosbridge.url)
    yield obs
    obs.close()
