"""Python agents in a cluster with P2P on, over 127.0.0.1: with C++ agents
(mesh-agents), with a C++ node without agents (mesh-node, driven by
meshctl) and with Python agents in another process. Each call goes both
ways; a graceful leave removes a node's agents from the others.
"""

import asyncio
import json
import os
import re
import select
import signal
import socket
import time

import pytest

import mesh
from conftest import DEADLINE, MCP_TOOL, OPENAI_TOOL, PYTHON, eventually, free_ports, node_env, program, run
from peer_agent import ECHO_IN, ECHO_OUT

HERE = os.path.dirname(os.path.abspath(__file__))


class Caller(mesh.Agent):
    role = "pycaller"

    def __init__(self):
        super().__init__()
        self.notes = []

    async def on_peer_notify(self, msg):
        self.notes.append(msg)


class PyScout(mesh.CustomAgent):
    """A Python scout the C++ scouts ask to validate their finds."""

    role = "scout"
    capabilities = ["search", "validate"]
    description = "a Python scout"

    def __init__(self):
        super().__init__()
        self.asked = []
        self.notes = []

    async def on_peer_request(self, msg):
        self.asked.append(msg)
        if msg.data.get("kind") != "validate":
            return {"error": "a scout answers validate requests"}
        return {"valid": True, "checked_by": self.agent_id, "node": self.peers.node_name}

    async def on_peer_notify(self, msg):
        self.notes.append(msg)


async def meshctl(admin_port, *args):
    # Through asyncio: the loop keeps running, so our agents can answer.
    p = await asyncio.create_subprocess_exec(program("MESHCTL_BIN"), "--admin", f"127.0.0.1:{admin_port}", *args,
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(p.communicate(), DEADLINE)
    return p.returncode, out.decode()


def ready_line(proc):
    # Log lines (on stderr, merged) may come first.
    seen = []
    for line in proc.stdout:
        if line.startswith("ready "):
            return line.split()[1]
        seen.append(line)
    pytest.fail(f"no ready line: {''.join(seen)}")


@run
async def test_a_port_in_use_is_a_clear_error():
    port, = free_ports(1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))
        m = mesh.Mesh(config=node_env(port, "py-taken"))
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port}: Address already in use"):
            await m.start()
        await m.stop()
        assert not m.running


def test_python_and_cpp_agents(procs):
    agents_bin = program("MESH_AGENTS_BIN")
    cpp_port, py_port, admin_port = free_ports(3)
    cpp = procs.start([agents_bin, "--agents", "scout,analyst", "--tick", "0"],
                      env=node_env(cpp_port, "cpp-1", admin_port=admin_port))

    @run
    async def scenario():
        m = mesh.Mesh(config=node_env(py_port, "py-1", seeds=[cpp_port]))
        caller = m.add(Caller)
        scout = m.add(PyScout)
        await m.start()
        try:
            assert m.p2p_enabled and m.swim_port == py_port and m.zmq_port == py_port + 1000
            p = caller.peers
            analyst = await eventually("the C++ analyst", lambda: p.get_peer("analyst"))
            assert analyst.node_id == "cpp-1" and analyst.location == "remote"
            assert analyst.capabilities == ["analysis", "summary"]
            cpp_scout = await eventually("the C++ scout",
                                         lambda: [x for x in p.discover(role="scout") if x.node_id == "cpp-1"])
            cpp_scout = cpp_scout[0]
            assert sorted(p.list_roles()) == ["analyst", "scout"]
            by_node = {d["agent_id"]: (d["node"], d["location"]) for d in p.list_peers()}
            assert by_node[analyst.agent_id] == ("cpp-1", "remote")
            assert by_node[scout.agent_id] == ("py-1", "local")

            # Python -> C++: request, notify, ask_async / check_inbox.
            s = await p.request("analyst", {"kind": "summary"}, timeout=DEADLINE)
            assert s["findings"] == 0 and s["node"] == "cpp-1" and s["analyst"] == analyst.agent_id
            finding = {"kind": "finding", "item": {"number": 1, "what": "a python find"},
                       "validation": {"valid": True}}
            assert await p.notify(analyst.agent_id, finding)
            rid = await p.ask_async("analyst", {"kind": "summary"}, timeout=DEADLINE)
            s = await p.check_inbox(rid, timeout=DEADLINE)
            assert s is not None
            if s["findings"] == 0:  # the notify and the ask race; the next ask sees it
                s = await p.request("analyst", {"kind": "summary"}, timeout=DEADLINE)
            assert s["findings"] == 1 and s["by_scout"] == {caller.agent_id: 1}
            assert s["latest"] == finding["item"]

            # C++ -> Python: the C++ scout, told to search, asks the only
            # other validating scout (ours) and reports to the analyst.
            assert await p.notify(cpp_scout.agent_id, {"kind": "search"})
            await eventually("the C++ scout's validate request", lambda: scout.asked)
            asked = scout.asked[0]
            assert asked.is_request and asked.sender == cpp_scout.agent_id
            assert asked.sender_node == "cpp-1" and asked.sender_role == "scout"
            assert asked.data["kind"] == "validate" and asked.data["item"]["found_by"] == cpp_scout.agent_id

            async def validated_twice():
                r = await p.request("analyst", {"kind": "summary"}, timeout=DEADLINE)
                return r if r and r["validated"] == 2 else None

            end = asyncio.get_running_loop().time() + DEADLINE
            while not (s := await validated_twice()):
                assert asyncio.get_running_loop().time() < end, "the analyst never heard of the validated find"
                await asyncio.sleep(0.05)
            assert s["findings"] == 2 and s["by_scout"][cpp_scout.agent_id] == 1

            # Scatter-gather over both languages' scouts.
            g = await p.request_all({"kind": "validate", "item": {"number": 2, "what": "x"}}, role="scout",
                                    timeout=DEADLINE)
            assert g.satisfied
            assert sorted(r["sender"] for r in g.responses) == sorted([cpp_scout.agent_id, scout.agent_id])
            assert all("valid" in r["data"] for r in g.responses)
            # Broadcast reaches every other agent, here and there.
            assert await p.broadcast({"hello": "everyone"}) == 3
            await eventually("our own scout's copy", lambda: any(n.data == {"hello": "everyone"}
                                                                  for n in scout.notes))

            # C++ -> Python through the C++ node's admin API (its node client).
            rc, out = await meshctl(admin_port, "request", scout.agent_id,
                                    json.dumps({"kind": "validate", "item": {"number": 3}}))
            assert rc == 0, out
            assert json.loads(out.strip().splitlines()[-1]) == {"valid": True, "checked_by": scout.agent_id,
                                                                "node": "py-1"}
            rc, out = await meshctl(admin_port, "send", caller.agent_id, '{"from": "meshctl"}')
            assert rc == 0, out
            await eventually("meshctl's notify", lambda: caller.notes)
            assert caller.notes[0].data == {"from": "meshctl"} and caller.notes[0].sender_node == "cpp-1"
            rc, out = await meshctl(admin_port, "peers", "--role", "scout")
            assert scout.agent_id in out
        finally:
            await m.stop()

        # The graceful leave: the C++ node drops our agents at once.
        async def gone():
            rc, out = await meshctl(admin_port, "peers")
            return rc == 0 and "pycaller" not in out and "py-1" not in out

        end = asyncio.get_running_loop().time() + DEADLINE
        while not await gone():
            assert asyncio.get_running_loop().time() < end, "the C++ node still lists the Python agents"
            await asyncio.sleep(0.1)

    scenario()
    rc, out = procs.stop(cpp)
    assert rc == 0, out


def test_python_nodes_and_mesh_node(procs):
    node_bin = program("MESH_NODE_BIN")
    seed_port, admin_port, other_port, py_port = free_ports(4)
    seed = procs.start([node_bin], env=node_env(seed_port, "seed", admin_port=admin_port))
    env = node_env(other_port, "py-2", seeds=[seed_port])
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    other = procs.start([PYTHON, os.path.join(HERE, "peer_agent.py")], env=env)

    @run
    async def scenario():
        echo_id = await asyncio.get_running_loop().run_in_executor(None, ready_line, other)
        m = mesh.Mesh(config=node_env(py_port, "py-1", seeds=[seed_port]))
        caller = m.add(Caller)
        await m.start()
        try:
            p = caller.peers
            echo = await eventually("the other process's agent", lambda: p.get_peer("pyecho"))
            assert echo.agent_id == echo_id and echo.node_id == "py-2" and echo.location == "remote"
            assert echo.description == "a Python echo in another process"
            r = await p.request("pyecho", {"n": 1}, timeout=DEADLINE)
            assert r == {"echo": {"n": 1}, "by": echo_id, "node": "py-2", "from": caller.agent_id,
                         "from_node": "py-1"}
            # Python -> Python -> Python: a notify, and one back.
            assert await p.notify(echo_id, {"reply_to": caller.agent_id})
            await eventually("the notify back", lambda: caller.notes)
            assert caller.notes[0].data == {"reply": {"reply_to": caller.agent_id}, "by": echo_id}
            assert caller.notes[0].sender == echo_id and caller.notes[0].sender_node == "py-2"
            rid = await p.ask_async(echo_id, {"n": 2}, timeout=DEADLINE)
            assert (await p.check_inbox(rid, timeout=DEADLINE))["echo"] == {"n": 2}
            g = await p.request_all({"n": 3}, capability="python", policy="first_k", k=1, timeout=DEADLINE)
            assert g.satisfied and g.responses[0]["sender"] == echo_id

            # Its schemas came with its card: a tool of its own here, and
            # in the C++ node's listing.
            tools = p.as_tools()
            own = [t for t in tools if t["name"] == "ask_pyecho"]
            assert len(own) == 1, tools
            assert own[0]["inputSchema"] == ECHO_IN and own[0]["outputSchema"] == ECHO_OUT
            openai = p.as_tools(format="openai")
            jsonschema = pytest.importorskip("jsonschema")
            jsonschema.validate(tools, {"type": "array", "items": MCP_TOOL})
            jsonschema.validate(openai, {"type": "array", "items": OPENAI_TOOL})
            r = await p.execute_tool("ask_pyecho", {"n": 5})
            assert r["echo"] == {"n": 5} and r["by"] == echo_id
            jsonschema.validate(r, ECHO_OUT)
            rc, out = await meshctl(admin_port, "peers", "--role", "pyecho", "--json")
            assert rc == 0, out
            listed = json.loads(out[out.index("["):])
            assert listed[0]["input_schema"] == ECHO_IN and listed[0]["output_schema"] == ECHO_OUT

            # mesh-node (no agents of its own) reaches both Python nodes.
            rc, out = await meshctl(admin_port, "request", "pyecho", '{"via": "mesh-node"}')
            assert rc == 0, out
            got = json.loads(out.strip().splitlines()[-1])
            assert got["echo"] == {"via": "mesh-node"} and got["from"] == "$node" and got["from_node"] == "seed"
            # ... its request_all (query) and broadcast, to Python agents here and there.
            rc, out = await meshctl(admin_port, "query", "--capability", "python", '{"via": "query"}')
            assert rc == 0, out
            assert f"{echo_id} (py-2): " in out and "1 of 1 answered" in out, out
            rc, out = await meshctl(admin_port, "broadcast", "--role", "pycaller", '{"via": "broadcast"}')
            assert rc == 0 and "sent to 1 agents" in out, out
            await eventually("the broadcast copy", lambda: any(n.data == {"via": "broadcast"} for n in caller.notes))

            # The other process leaves on SIGINT (Ctrl-C): gone from here at once.
            other.send_signal(signal.SIGINT)
            await eventually("the leave", lambda: p.get_peer("pyecho") is None)
            assert await p.request("pyecho", {"n": 4}, timeout=5) is None
        finally:
            await m.stop()

    scenario()
    rc, out = procs.stop(other)
    assert rc == 0 and out.strip().endswith("left"), out
    rc, out = procs.stop(seed)
    assert rc == 0, out


def test_the_python_example_with_cpp_agents(procs):
    agents_bin = program("MESH_AGENTS_BIN")
    example = os.path.join(HERE, "..", "..", "examples", "python", "scout_analyst.py")
    cpp_port, py_port = free_ports(2)
    cpp = procs.start([agents_bin, "--agents", "analyst,scout", "--tick", "0.3"], env=node_env(cpp_port, "cpp-1"))
    env = node_env(py_port, "py-ex", seeds=[cpp_port])
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    py = procs.start([PYTHON, example, "--agents", "scout", "--tick", "0.3"], env=env)

    # Each side's scout has its finds validated by the other side's scout
    # (the only other one) and reported to the C++ analyst.
    want_py = re.compile(r"^\[py-ex\] scout-\S+ → analyst-\S+: finding #\d+ .*by scout-\S+ on node cpp-1\)$")
    want_cpp = re.compile(r"^\[cpp-1\] scout-\S+ → analyst-\S+: finding #\d+ .*by scout-\S+ on node py-ex\)$")
    seen = {"py": [], "cpp": []}
    end = time.monotonic() + DEADLINE
    while not (any(want_py.match(x) for x in seen["py"]) and any(want_cpp.match(x) for x in seen["cpp"])):
        assert time.monotonic() < end, f"no exchange seen: {seen}"
        ready, _, _ = select.select([py.stdout, cpp.stdout], [], [], 1.0)
        for f in ready:
            line = f.readline()
            if line:
                seen["py" if f is py.stdout else "cpp"].append(line.rstrip("\n"))
    rc, out = procs.stop(py, sig=signal.SIGINT)
    assert rc == 0 and out.rstrip().endswith("[py-ex] left the mesh"), out
    rc, out = procs.stop(cpp)
    assert rc == 0, out
