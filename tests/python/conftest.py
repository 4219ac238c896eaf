"""Shared helpers of the Python binding's tests (tests/python).

Run from a build tree: PYTHONPATH=<build>/python, and for the cluster tests
MESH_AGENTS_BIN, MESH_NODE_BIN and MESHCTL_BIN naming that build's
programs (ctest sets all four: python/CMakeLists.txt).
"""

import asyncio
import functools
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

# Generous: the machine is shared and may be slow; nothing waits this long
# unless something is broken.
DEADLINE = 30.0


def run(coro_fn):
    """Runs an async test function in a fresh event loop, bounded."""

    @functools.wraps(coro_fn)
    def wrapper(*args, **kwargs):
        async def bounded():
            return await asyncio.wait_for(coro_fn(*args, **kwargs), 4 * DEADLINE)

        return asyncio.run(bounded())

    return wrapper


async def eventually(what, pred, deadline=DEADLINE):
    """Waits until pred() is true (re-checked every 20 ms), or fails."""
    end = time.monotonic() + deadline
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def free_ports(n):
    # The kernel's picks; every probe socket stays open until all n are
    # chosen, so no port is handed out twice. Each is checked free for UDP
    # too (SWIM uses both).
    probes = []
    ports = []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(s)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            # SWIM binds UDP on its port and ZeroMQ takes port + 1000 (TCP).
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                u.bind(("127.0.0.1", port))
                if port + 1000 < 65536:
                    t.bind(("127.0.0.1", port + 1000))
                    ports.append(port)
            except OSError:
                pass
            finally:
                u.close()
                t.close()
        return ports
    finally:
        for s in probes:
            s.close()


def program(env_name):
    path = os.environ.get(env_name)
    if not path or not os.access(path, os.X_OK):
        pytest.skip(f"{env_name} is not set to a built program (run through ctest)")
    return path


class Processes:
    """Child processes of a test, killed and reaped when it ends."""

    def __init__(self):
        self.procs = []

    def start(self, argv, env=None, **kw):
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             **kw)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=DEADLINE):
        if p.poll() is None:
            p.send_signal(sig)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        return p.returncode, out

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def procs():
    ps = Processes()
    yield ps
    ps.cleanup()


def node_env(port, name, seeds=None, admin_port=None):
    env = {
        "P2P_ENABLED": "true",
        "JC_SWIM_HOST": "127.0.0.1",
        "JC_SWIM_PORT": str(port),
        "JC_NODE_NAME": name,
        "JC_PROFILE": "local",
        "JC_LOG_LEVEL": "warn",
    }
    if seeds:
        env["JC_SEED_NODES"] = ",".join(f"127.0.0.1:{s}" for s in seeds)
    if admin_port is not None:
        env["JC_ADMIN_HOST"] = "127.0.0.1"
        env["JC_ADMIN_PORT"] = str(admin_port)
    return env


PYTHON = sys.executable


# The JSON Schema of a tool definition: MCP's Tool (tools/list) and OpenAI's
# function tool, the fields a client checks.
MCP_TOOL = {
    "type": "object",
    "required": ["name", "inputSchema"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "inputSchema": {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {"const": "object"},
                "properties": {"type": "object", "additionalProperties": {"type": "object"}},
                "required": {"type": "array", "items": {"type": "string"}},
            },
        },
        # Optional (MCP 2025-06-18): the structured result's schema.
        "outputSchema": {"type": "object", "required": ["type"], "properties": {"type": {"const": "object"}}},
    },
}
OPENAI_TOOL = {
    "type": "object",
    "required": ["type", "function"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name", "parameters"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
                "description": {"type": "string"},
                "parameters": {"type": "object", "required": ["type"], "properties": {"type": {"const": "object"}}},
            },
        },
    },
}
