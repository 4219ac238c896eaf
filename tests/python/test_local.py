"""The Python API in one process with P2P off: agents talk in memory.

Every PeerClient call, the agent life cycle, and the error cases: unknown
strategy, unresolvable target, timeout, oversized payload, a value that is
no JSON, cancellation of a pending request, a handler that raises.
"""

import asyncio
import json
import os
import signal
import subprocess
import textwrap
import time

import pytest

import mesh
from conftest import DEADLINE, MCP_TOOL, OPENAI_TOOL, PYTHON, eventually, run


def local_mesh(**config):
    cfg = {"P2P_ENABLED": "false", "JC_NODE_NAME": "py-local"}
    cfg.update(config)
    return mesh.Mesh(config=cfg, seed=7)


class Echo(mesh.CustomAgent):
    role = "echo"
    capabilities = ["echo", "text"]
    description = "answers with what it was sent"

    def __init__(self):
        super().__init__()
        self.notes = []
        self.contexts = []

    async def on_peer_request(self, msg):
        self.contexts.append(msg.context)
        return {"echo": msg.data, "by": self.agent_id, "from": msg.sender, "role_of_sender": msg.sender_role}

    async def on_peer_notify(self, msg):
        self.notes.append((msg.sender, msg.data))


class Caller(mesh.Agent):
    role = "caller"
    capabilities = ["asking"]


class Slow(mesh.CustomAgent):
    """Answers only when told to (release), so requests to it pend."""

    role = "slow"

    def __init__(self):
        super().__init__()
        self.held = []

    async def on_peer_request(self, msg):
        self.held.append(msg)
        return None  # answered later, or never

    async def release(self, data):
        n = 0
        for m in self.held:
            n += await self.peers.respond(m, data)
        self.held.clear()
        return n


class Faulty(mesh.CustomAgent):
    role = "faulty"

    def __init__(self):
        super().__init__()
        self.errors_seen = []

    async def on_peer_request(self, msg):
        if msg.data.get("fail"):
            raise RuntimeError("asked to fail")
        return {"ok": True}

    async def on_peer_notify(self, msg):
        raise KeyError("notify handler broke")

    async def on_error(self, error, message=None):
        self.errors_seen.append((type(error).__name__, str(error), message.type if message else None))


def test_public_names():
    for name in ("Mesh", "Agent", "CustomAgent", "ListenerAgent", "PeerClient", "PeerInfo", "IncomingMessage",
                 "MeshError"):
        assert hasattr(mesh, name), name
    assert mesh.STRATEGIES == ("first", "random", "round_robin", "least_recent")


def test_configuration_errors_are_value_errors():
    with pytest.raises(ValueError, match="JC_SWIM_PORT"):
        mesh.Mesh(config={"P2P_ENABLED": "false", "JC_SWIM_PORT": "not-a-port"})
    with pytest.raises(ValueError):
        mesh.Mesh(mode="sideways")
    m = local_mesh()
    assert not m.p2p_enabled
    assert m.node_name == "py-local"
    with pytest.raises(ValueError, match="no role"):
        m.add(type("NoRole", (mesh.Agent,), {}))
    with pytest.raises(TypeError):
        m.add(object)
    fixed = type("Fixed", (mesh.Agent,), {"role": "fixed", "agent_id": "fixed-1"})
    assert m.add(fixed).agent_id == "fixed-1"
    with pytest.raises(ValueError, match="already in use"):
        m.add(fixed)
    with pytest.raises(ValueError, match="whitespace"):
        m.add(type("Spaced", (mesh.Agent,), {"role": "has space"}))
    agent = m.add(Echo)
    with pytest.raises(ValueError, match="added already"):
        m.add(agent)


@run
async def test_discovery():
    m = local_mesh()
    caller = m.add(Caller)
    echoes = [m.add(Echo) for _ in range(3)]
    slow = m.add(Slow)
    async with m:
        p = caller.peers
        assert p.my_id == caller.agent_id and p.my_id.startswith("caller-")
        assert p.my_role == "caller"
        assert p.node_name == "py-local"
        ids = sorted(e.agent_id for e in echoes)

        peer = p.get_peer("echo")
        assert peer.agent_id in ids and peer.role == "echo"
        assert peer.node_id == "py-local" and peer.location == "local"
        assert peer.capabilities == ["echo", "text"]
        assert peer.description == "answers with what it was sent"
        assert p.get_peer("nobody") is None

        assert sorted(x.agent_id for x in p.discover(role="echo")) == ids
        assert sorted(x.agent_id for x in p.discover(capability="text")) == ids
        assert p.discover(role="echo", capability="nope") == []
        assert p.discover(role="caller") == [], "the caller is never its own peer"
        for strategy in mesh.STRATEGIES:
            assert sorted(x.agent_id for x in p.discover(role="echo", strategy=strategy)) == ids
        with pytest.raises(ValueError, match="strategy"):
            p.discover(role="echo", strategy="cheapest")
        with pytest.raises(ValueError):
            p.discover()
        with pytest.raises(ValueError, match="strategy"):
            p.discover_one(role="echo", strategy="best")

        # round_robin walks all three before repeating.
        seen = [p.discover_one(role="echo", strategy="round_robin").agent_id for _ in range(3)]
        assert sorted(seen) == ids
        # least_recent prefers the one not used for longest.
        first = p.discover_one(role="echo", strategy="least_recent").agent_id
        assert p.record_peer_usage(first)
        assert p.discover_one(role="echo", strategy="least_recent").agent_id != first
        assert not p.record_peer_usage("ghost-00000000")

        assert p.list_roles() == ["echo", "slow"]
        peers = p.list_peers()
        assert sorted(d["agent_id"] for d in peers) == sorted(ids + [slow.agent_id])
        for d in peers:
            assert {"agent_id", "role", "capabilities", "description", "status", "location"} <= set(d)
            assert d["location"] == "local"
            assert d["status"] == "active"
        reg = p.registry
        assert set(reg) == set(ids + [slow.agent_id])
        assert reg[ids[0]]["role"] == "echo"

        p.set_default_strategy("round_robin")
        assert p.default_strategy == "round_robin"
        with pytest.raises(ValueError):
            p.set_default_strategy("fastest")


@run
async def test_request_notify_and_context():
    m = local_mesh()
    caller = m.add(Caller)
    echo = m.add(Echo)
    async with m:
        p = caller.peers
        r = await p.request("echo", {"x": [1, 2.5, "three", None, True]}, timeout=DEADLINE,
                            context={"trace": "t-1"})
        assert r == {"echo": {"x": [1, 2.5, "three", None, True]}, "by": echo.agent_id, "from": caller.agent_id,
                     "role_of_sender": "caller"}
        assert echo.contexts == [{"trace": "t-1"}]

        d = await p.request_detailed(echo.agent_id, {"n": 2**63 + 5}, timeout=DEADLINE)
        assert d.ok and d.error is None
        assert d.data["echo"] == {"n": 2**63 + 5}
        assert d.sender == echo.agent_id and d.sender_node == "py-local"
        assert d.context == {}

        assert await p.notify("echo", {"note": "é ✓"}) is True
        await eventually("the notify", lambda: echo.notes)
        assert echo.notes == [(caller.agent_id, {"note": "é ✓"})]

        # Unresolvable targets: None / False, never an exception.
        assert await p.request("nobody", {"x": 1}, timeout=5) is None
        assert (await p.request_detailed("nobody", {"x": 1}, timeout=5)).error == "target_unknown"
        assert await p.notify("nobody", {"x": 1}) is False

        # What cannot be sent raises before anything is sent.
        with pytest.raises(TypeError, match="set"):
            await p.request("echo", {"x": {1, 2}})
        with pytest.raises(TypeError, match="keys must be str"):
            await p.notify("echo", {1: "one"})
        with pytest.raises(TypeError, match="context"):
            await p.notify("echo", {}, context=["not", "a", "dict"])
        with pytest.raises(ValueError, match="64 bits"):
            await p.notify("echo", {"big": 2**70})
        deep = []
        for _ in range(200):
            deep = [deep]
        with pytest.raises(ValueError, match="nested"):
            await p.notify("echo", deep)
        with pytest.raises(ValueError):
            await p.request("echo", {}, timeout=-1)


@run
async def test_timeout_and_late_answer():
    m = local_mesh()
    caller = m.add(Caller)
    slow = m.add(Slow)
    async with m:
        r = await caller.peers.request_detailed("slow", {"q": 1}, timeout=0.2)
        assert r.error == "timeout" and r.data is None
        assert await caller.peers.request("slow", {"q": 2}, timeout=0.2) is None
        # Answering after the requester gave up is harmless.
        await eventually("both requests held", lambda: len(slow.held) == 2)
        await slow.release({"late": True})


@run
async def test_cancelling_a_pending_request():
    m = local_mesh()
    caller = m.add(Caller)
    slow = m.add(Slow)
    echo = m.add(Echo)
    async with m:
        task = asyncio.create_task(caller.peers.request("slow", {"q": "pending"}, timeout=DEADLINE))
        await eventually("the request to arrive", lambda: slow.held)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The answer that comes after the cancellation is dropped quietly,
        # and the client goes on working.
        assert await slow.release({"too": "late"}) == 1
        r = await caller.peers.request("echo", {"after": "cancel"}, timeout=DEADLINE)
        assert r["echo"] == {"after": "cancel"}
        # wait_for's timeout cancels the same way.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(caller.peers.request("slow", {"q": 3}, timeout=DEADLINE), 0.2)
        assert echo.errors == 0


@run
async def test_handler_that_raises_is_reported_and_the_agent_goes_on():
    m = local_mesh()
    caller = m.add(Caller)
    faulty = m.add(Faulty)
    async with m:
        r = await caller.peers.request_detailed("faulty", {"fail": True}, timeout=DEADLINE)
        assert r.error == "rejected", "the requester learns at once"
        assert faulty.errors_seen == [("RuntimeError", "asked to fail", "request")]
        assert await caller.peers.request("faulty", {"fail": False}, timeout=DEADLINE) == {"ok": True}
        assert await caller.peers.notify("faulty", {"any": 1})
        await eventually("the notify's error", lambda: len(faulty.errors_seen) == 2)
        assert faulty.errors_seen[1][0] == "KeyError"
        assert faulty.errors == 2
        assert await caller.peers.request("faulty", {}, timeout=DEADLINE) == {"ok": True}


@run
async def test_an_idle_mesh_does_not_poll():
    # Every await completes on a wake-up (the eventfd the loop watches),
    # never on a timer: an idle node with waiting agents uses no CPU.
    m = local_mesh()
    caller = m.add(Caller)
    m.add(Echo)
    m.add(Slow)
    async with m:
        pending = asyncio.create_task(caller.peers.request("slow", {}, timeout=DEADLINE))
        waiting = asyncio.create_task(caller.peers.receive())
        await asyncio.sleep(0.2)
        cpu0 = time.process_time()
        await asyncio.sleep(2)
        used = time.process_time() - cpu0
        assert used < 0.2, f"{used:.3f} s of CPU in 2 s idle"
        assert not pending.done() and not waiting.done()
        pending.cancel()
        waiting.cancel()


class Holder(mesh.CustomAgent):
    """Two messages at most; its handlers wait until released."""

    role = "holder"
    mailbox_limit = 2

    def __init__(self):
        super().__init__()
        self.release = asyncio.Event()
        self.waiting = 0

    async def on_peer_request(self, msg):
        self.waiting += 1
        await self.release.wait()
        return {"released": msg.data}

    async def on_peer_notify(self, msg):
        self.waiting += 1
        await self.release.wait()


@run
async def test_a_full_agent_pushes_back():
    m = local_mesh()
    caller = m.add(Caller)
    holder = m.add(Holder)
    async with m:
        p = caller.peers
        held = [asyncio.create_task(p.request("holder", {"n": i}, timeout=DEADLINE)) for i in range(2)]
        await eventually("both requests in the handler", lambda: holder.waiting == 2)
        r = await p.request_detailed("holder", {"n": 3}, timeout=DEADLINE)
        assert r.error == "mailbox_full", "the third is refused at once, not left to time out"
        # A notify is refused as well, and its sender told so (as for a
        # full C++ agent), not accepted and then dropped.
        assert await p.notify("holder", {"n": 4}) is False
        assert holder.dropped == 0
        assert holder.waiting == 2
        holder.release.set()
        assert [await t for t in held] == [{"released": {"n": 0}}, {"released": {"n": 1}}]
        # The places are given back once the handlers are done.
        assert await p.request("holder", {"n": 5}, timeout=DEADLINE) == {"released": {"n": 5}}
        assert await p.notify("holder", {"n": 6}) is True
        await eventually("the notify to be handled", lambda: holder.waiting == 4)


@run
async def test_messages_waiting_in_the_inbox_hold_their_place():
    class Slow(mesh.Agent):
        role = "slow"
        mailbox_limit = 2

    m = local_mesh()
    caller = m.add(Caller)
    slow = m.add(Slow)
    async with m:
        p = caller.peers
        assert await p.notify("slow", {"n": 1}) and await p.notify("slow", {"n": 2})
        # Once both reached Python (each place is taken a moment after the
        # runtime hands the message over, so a sender in that moment may
        # still find room: the check below waits until it has passed).
        await eventually("both in the agent's inbox", lambda: slow._pending == 2)
        assert await p.notify("slow", {"n": 3}) is False, "two wait in the inbox: full"
        first = await slow.peers.receive(timeout=DEADLINE)
        assert first.data == {"n": 1}
        assert await p.notify("slow", {"n": 4}), "receive() gave one place back"
        assert (await slow.peers.receive(timeout=DEADLINE)).data == {"n": 2}
        assert (await slow.peers.receive(timeout=DEADLINE)).data == {"n": 4}


class Inboxed(mesh.Agent):
    """No handlers: everything goes to receive(), answered from run()."""

    role = "inboxed"

    def __init__(self):
        super().__init__()
        self.notes = []

    async def run(self):
        while not self.shutdown_requested:
            msg = await self.peers.receive(timeout=0.5)
            if msg is None:
                continue
            if msg.is_request:
                assert await self.peers.respond(msg, {"got": msg.data}, context={"answered": "by run"})
                assert not await self.peers.respond(msg, {"twice": True}), "a request is answered once"
            else:
                self.notes.append(msg.data)


@run
async def test_receive_and_respond_from_run():
    m = local_mesh()
    caller = m.add(Caller)
    inboxed = m.add(Inboxed)
    async with m:
        d = await caller.peers.request_detailed("inboxed", {"q": 42}, timeout=DEADLINE)
        assert d.data == {"got": {"q": 42}}
        assert d.context == {"answered": "by run"}
        assert await caller.peers.notify("inboxed", "just a string")
        await eventually("the notify", lambda: inboxed.notes)
        assert inboxed.notes == ["just a string"]
        # A caller with nothing in its inbox times out with None.
        assert await caller.peers.receive(timeout=0.05) is None
        assert await caller.peers.receive(timeout=0) is None
        assert await m.peers.receive(timeout=0.05) is None, "the node client has no inbox"


class Collector(mesh.Agent):
    role = "collector"


@run
async def test_receive_with_short_timeouts_loses_nothing():
    m = local_mesh()
    caller = m.add(Caller)
    collector = m.add(Collector)
    async with m:
        n = 300

        async def send():
            for i in range(n):
                assert await caller.peers.notify("collector", {"i": i})
                if i % 10 == 0:
                    await asyncio.sleep(0.001)

        sender = asyncio.create_task(send())
        got = []
        end = asyncio.get_running_loop().time() + DEADLINE
        while len(got) < n:
            assert asyncio.get_running_loop().time() < end, f"{len(got)} of {n} received"
            msg = await collector.peers.receive(timeout=0.0005)
            if msg is not None:
                got.append(msg.data["i"])
        await sender
        assert got == list(range(n)), "every message, in order"
        assert collector._pending == 0


@run
async def test_broadcast():
    m = local_mesh()
    caller = m.add(Caller)
    echoes = [m.add(Echo) for _ in range(3)]
    inboxed = m.add(Inboxed)
    async with m:
        assert await caller.peers.broadcast({"all": 1}) == 4, "one copy per agent, never to the sender"
        assert await caller.peers.broadcast({"echoes": 1}, role="echo") == 3
        await eventually("every copy", lambda: all(len(e.notes) == 2 for e in echoes) and inboxed.notes)
        assert inboxed.notes == [{"all": 1}]


@run
async def test_ask_async_and_check_inbox():
    m = local_mesh()
    caller = m.add(Caller)
    echo = m.add(Echo)
    slow = m.add(Slow)
    async with m:
        p = caller.peers
        rid = await p.ask_async("echo", {"ask": 1})
        assert isinstance(rid, str) and len(rid) == 32
        assert await p.check_inbox(rid, timeout=DEADLINE) == {"echo": {"ask": 1}, "by": echo.agent_id,
                                                             "from": caller.agent_id, "role_of_sender": "caller"}
        assert await p.check_inbox(rid) is None, "removed once delivered"

        rid = await p.ask_async(echo.agent_id, {"ask": 2})
        got = await p.check_inbox(rid, timeout=DEADLINE, remove=False)
        assert got["echo"] == {"ask": 2}
        assert await p.check_inbox(rid) == got, "kept with remove=False"
        assert await p.check_inbox(rid) is None

        pending = await p.ask_async("slow", {"ask": 3}, timeout=DEADLINE)
        assert await p.check_inbox(pending) is None, "not there yet"
        assert await p.check_inbox(pending, timeout=0.1) is None
        await eventually("the ask to arrive", lambda: slow.held)
        await slow.release({"finally": 3})
        assert await p.check_inbox(pending, timeout=DEADLINE) == {"finally": 3}

        expiring = await p.ask_async("slow", {"ask": 4}, timeout=0.1)
        assert await p.check_inbox(expiring, timeout=DEADLINE) is None, "expired"

        with pytest.raises(ValueError, match="nobody"):
            await p.ask_async("nobody", {"ask": 5})
        assert await p.check_inbox("0" * 32) is None

        # An answer never collected is forgotten ASK_RETENTION after its deadline.
        retention = mesh._core.ASK_RETENTION
        mesh._core.ASK_RETENTION = 0.2
        try:
            kept = await p.ask_async("echo", {"ask": 6}, timeout=1.0)
            await eventually("the answer", lambda: kept in p._asks and p._asks[kept].done())
            await eventually("the entry to be forgotten", lambda: kept not in p._asks)
            assert await p.check_inbox(kept) is None
        finally:
            mesh._core.ASK_RETENTION = retention


@run
async def test_oversized_payloads():
    m = local_mesh(JC_MAX_MESSAGE_BYTES="64KiB")
    caller = m.add(Caller)
    echo = m.add(Echo)
    async with m:
        big = {"blob": "x" * 100_000}
        p = caller.peers
        assert await p.notify("echo", big) is False
        assert (await p.request_detailed("echo", big, timeout=5)).error == "oversized"
        assert await p.broadcast(big) == 0
        with pytest.raises(mesh.MeshError) as err:
            await p.ask_async("echo", big)
        assert err.value.code == "oversized"
        assert await p.request("echo", {"small": 1}, timeout=DEADLINE) is not None
        assert echo.notes == []


@run
async def test_request_all_policies():
    m = local_mesh()
    caller = m.add(Caller)
    echoes = [m.add(Echo) for _ in range(3)]
    slow = m.add(Slow)
    async with m:
        p = caller.peers
        g = await p.request_all({"q": "all"}, role="echo", timeout=DEADLINE)
        assert g.satisfied
        assert sorted(r["sender"] for r in g.responses) == sorted(e.agent_id for e in echoes)
        assert all(r["data"]["echo"] == {"q": "all"} for r in g.responses)
        assert g.missing == []

        g = await p.request_all({"q": "one"}, capability="echo", policy="first_k", k=1, timeout=DEADLINE)
        assert g.satisfied and len(g.responses) == 1

        g = await p.request_all({"q": "quorum"}, role="echo", policy="quorum", timeout=DEADLINE)
        assert g.satisfied and len(g.responses) >= 2

        # A peer that does not answer in time is missing, with its reason.
        g = await p.request_all({"q": "slow"}, role="slow", timeout=0.2)
        assert not g.satisfied and g.responses == []
        assert [(x["peer"]["agent_id"], x["error"]) for x in g.missing] == [(slow.agent_id, "timeout")]

        with pytest.raises(ValueError, match="policy"):
            await p.request_all({}, role="echo", policy="most")
        with pytest.raises(ValueError, match="k > 0"):
            await p.request_all({}, role="echo", policy="first_k")
        with pytest.raises(ValueError):
            await p.request_all({})


class Forwarder(mesh.CustomAgent):
    """Asks an echo while handling a request: the same conversation."""

    role = "forwarder"

    async def on_peer_request(self, msg):
        inner = await self.peers.request("threaded", {"inner": msg.data}, timeout=DEADLINE)
        return {"outer_thread": msg.thread_id, "inner": inner}


class Threaded(mesh.CustomAgent):
    role = "threaded"

    async def on_peer_request(self, msg):
        return {"thread": msg.thread_id}


@run
async def test_requests_from_a_handler_continue_its_conversation():
    m = local_mesh()
    caller = m.add(Caller)
    m.add(Forwarder)
    m.add(Threaded)
    async with m:
        r = await caller.peers.request("forwarder", {"q": 1}, timeout=DEADLINE)
        assert r["inner"] is not None
        assert len(r["outer_thread"]) == 32 and r["outer_thread"] != "0" * 32
        assert r["inner"]["thread"] == r["outer_thread"]
        # A request of its own (not from a handler) opens another thread.
        other = await caller.peers.request("threaded", {}, timeout=DEADLINE)
        assert other["thread"] != r["outer_thread"]


class PingA(mesh.CustomAgent):
    role = "pinga"

    async def on_peer_request(self, msg):
        r = await self.peers.request_detailed("pingb", {}, timeout=DEADLINE)
        return {"a": r.data, "error": r.error}


class PingB(mesh.CustomAgent):
    role = "pingb"

    async def on_peer_request(self, msg):
        r = await self.peers.request_detailed("pinga", {}, timeout=DEADLINE)
        return {"b": r.data, "error": r.error}


@run
async def test_a_conversation_between_python_agents_has_a_turn_limit():
    m = local_mesh(JC_THREAD_MAX_TURNS="6")
    caller = m.add(Caller)
    m.add(PingA)
    m.add(PingB)
    async with m:
        r = await caller.peers.request("pinga", {}, timeout=DEADLINE)
        # Each handler asks the other: six requests make the thread's six
        # turns, the seventh (pingb's third) is refused, and each level
        # answers with what it got.
        depth = 0
        while r["error"] is None:
            r = r.get("a") or r.get("b")
            depth += 1
        assert r["error"] == "turn_limit"
        assert depth == 5, depth


POLICY = """
zones:
  askers:
    roles: ["caller"]
  echoes:
    roles: ["echo"]
rules:
  - from: askers
    to: echoes
    allow: [request]
default: deny
"""


@run
async def test_the_trust_policy_holds_for_python_agents(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    m = local_mesh(JC_POLICY=str(policy))
    caller = m.add(Caller)
    m.add(Echo)
    slow = m.add(Slow)
    async with m:
        p = caller.peers
        assert (await p.request("echo", {"allowed": 1}, timeout=DEADLINE))["echo"] == {"allowed": 1}
        assert await p.notify("echo", {}) is False, "requests only"
        assert (await p.request_detailed(slow.agent_id, {}, timeout=DEADLINE)).error == "permission_denied"
        assert p.list_roles() == ["echo"], "discovery shows only whom the caller may reach"
        assert await p.broadcast({}) == 0
        assert (await slow.peers.request_detailed("echo", {}, timeout=DEADLINE)).error == "permission_denied"
        assert slow.held == []


class Lifecycle(mesh.CustomAgent):
    role = "lifecycle"
    events = []

    async def setup(self):
        Lifecycle.events.append("setup")

    async def run(self):
        Lifecycle.events.append("run")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            Lifecycle.events.append("run cancelled")
            raise

    async def teardown(self):
        Lifecycle.events.append(("teardown", self.shutdown_requested))


@run
async def test_life_cycle_and_agents_added_late():
    Lifecycle.events = []
    m = local_mesh()
    m.add(Lifecycle)
    async with m:
        await eventually("run", lambda: "run" in Lifecycle.events)
        assert m.running
        assert m.readiness()[0] is True
        late = m.add(Echo)
        caller = m.add(Caller)
        assert await caller.peers.request(late.agent_id, {"late": 1}, timeout=DEADLINE) is not None
        with pytest.raises(RuntimeError):
            await m.start()
    assert Lifecycle.events == ["setup", "run", "run cancelled", ("teardown", True)]
    assert not m.running
    await m.stop()  # idempotent
    with pytest.raises(RuntimeError, match="stopped"):
        m.add(Echo)
    # A stopped mesh sends nothing.
    assert await caller.peers.notify("echo", {}) is False
    assert (await caller.peers.request_detailed("echo", {}, timeout=1)).error == "shutdown"


@run
async def test_tools_and_cognitive_context():
    jsonschema = pytest.importorskip("jsonschema")
    m = local_mesh()
    caller = m.add(Caller)
    m.add(Echo)
    m.add(Faulty)
    async with m:
        p = caller.peers
        mcp = p.as_tools()
        openai = p.as_tools(format="openai")
        jsonschema.validate(mcp, {"type": "array", "items": MCP_TOOL})
        jsonschema.validate(openai, {"type": "array", "items": OPENAI_TOOL})
        for t in mcp:
            jsonschema.Draft202012Validator.check_schema(t["inputSchema"])
        names = [t["name"] for t in mcp]
        assert names == ["ask_peer", "notify_peer", "list_peers"]
        assert [t["function"]["name"] for t in openai] == names
        ask = mcp[0]
        assert set(ask["inputSchema"]["properties"]["target"]["enum"]) >= {"echo", "faulty"}
        assert "echo (echo, text): answers with what it was sent" in ask["description"]
        # Filtered to one role.
        only = p.as_tools(role="echo")[0]["inputSchema"]["properties"]["target"]["enum"]
        assert "faulty" not in only and "echo" in only
        with pytest.raises(ValueError):
            p.as_tools(format="yaml")

        # A call an LLM made, as text or dict, checked against the schema.
        args = '{"target": "echo", "message": {"question": "hi"}}'
        jsonschema.validate(json.loads(args), ask["inputSchema"])
        r = await p.execute_tool("ask_peer", args)
        assert r["echo"] == {"question": "hi"}
        assert await p.execute_tool("ask_peer", {"target": "faulty", "message": {"fail": True}}) == \
            {"error": "rejected"}
        assert await p.execute_tool("notify_peer", {"target": "echo", "message": {}}) == {"delivered": True}
        listed = await p.execute_tool("list_peers", {})
        assert sorted(x["role"] for x in listed["peers"]) == ["echo", "faulty"]
        with pytest.raises(ValueError):
            await p.execute_tool("rm_rf", {})

        ctx = p.get_cognitive_context()
        assert ctx.splitlines()[0].startswith("Available peers")
        assert "- echo (1 agent; capabilities: echo, text)" in ctx
        assert "answers with what it was sent" in ctx
        assert "- faulty" in ctx
        assert "caller" not in ctx, "the agent itself is no peer"
    empty = local_mesh()
    assert empty.peers.get_cognitive_context() == "No other agents are reachable right now."


LOOKUP_IN = {
    "type": "object",
    "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
    "required": ["query"],
    "additionalProperties": False,
}
LOOKUP_OUT = {"type": "object", "properties": {"found": {"type": "array"}}, "required": ["found"]}


class Lookup(mesh.CustomAgent):
    role = "lookup"
    capabilities = ["search"]
    description = "finds things"
    input_schema = LOOKUP_IN
    output_schema = LOOKUP_OUT

    async def on_peer_request(self, msg):
        return {"found": [msg.data["query"]] * msg.data.get("limit", 1)}


class Calc(mesh.CustomAgent):
    role = "calc"
    input_schema = {"type": "string", "description": "an expression"}

    async def on_peer_request(self, msg):
        return {"got": msg.data}


@run
async def test_schemas_become_tools_of_their_own():
    jsonschema = pytest.importorskip("jsonschema")
    m = local_mesh()
    caller = m.add(Caller)
    m.add(Lookup)
    m.add(Calc)
    m.add(Echo)
    async with m:
        p = caller.peers
        listed = {d["role"]: d for d in p.list_peers()}
        assert listed["lookup"]["input_schema"] == LOOKUP_IN
        assert listed["lookup"]["output_schema"] == LOOKUP_OUT
        assert "input_schema" not in listed["echo"]
        mcp = p.as_tools()
        openai = p.as_tools(format="openai")
        jsonschema.validate(mcp, {"type": "array", "items": MCP_TOOL})
        jsonschema.validate(openai, {"type": "array", "items": OPENAI_TOOL})
        names = [t["name"] for t in mcp]
        assert names == ["ask_peer", "notify_peer", "list_peers", "ask_calc", "ask_lookup"]
        assert [t["function"]["name"] for t in openai] == names
        lookup = mcp[4]
        assert lookup["inputSchema"] == LOOKUP_IN
        assert lookup["outputSchema"] == LOOKUP_OUT
        assert "finds things" in lookup["description"]
        assert json.dumps(LOOKUP_OUT, separators=(",", ":"), sort_keys=True) in lookup["description"]
        assert openai[4]["function"]["parameters"] == LOOKUP_IN
        calc = openai[3]["function"]["parameters"]
        assert calc["properties"]["message"] == Calc.input_schema and calc["required"] == ["message"]
        for t in mcp:
            jsonschema.Draft202012Validator.check_schema(t["inputSchema"])
        assert "ask_lookup (lookup)" in mcp[0]["description"]
        assert [t["name"] for t in p.as_tools(role="echo")] == ["ask_peer", "notify_peer", "list_peers"]
        assert "tool of its own, taking its input schema: ask_lookup" in p.get_cognitive_context()

        # The model's call: arguments checked by the peer's schema are the message.
        args = {"query": "cave", "limit": 2}
        jsonschema.validate(args, lookup["inputSchema"])
        r = await p.execute_tool("ask_lookup", json.dumps(args))
        assert r == {"found": ["cave", "cave"]}
        jsonschema.validate(r, LOOKUP_OUT)
        assert await p.execute_tool("ask_calc", {"message": "1+1"}) == {"got": "1+1"}
        with pytest.raises(ValueError, match="unknown tool"):
            await p.execute_tool("ask_echo", {})


@run
async def test_bad_schemas_are_refused_when_added():
    m = local_mesh()
    for schema, error, match in (([1, 2], ValueError, "must be a dict"),
                                 ("{}", ValueError, "must be a dict"),
                                 ({"description": "x" * 40000}, ValueError, "input_schema is longer than"),
                                 ({"x": object()}, TypeError, "")):
        class Bad(mesh.CustomAgent):
            role = "bad"
            input_schema = schema
        with pytest.raises(error, match=match):
            m.add(Bad)

    class Deep(mesh.CustomAgent):
        role = "deep"
        output_schema = json.loads('{"a":' * 40 + '{}' + '}' * 40)
    with pytest.raises(ValueError, match="output_schema nests deeper than 32 levels"):
        m.add(Deep)
    assert m.agents == []


@run
async def test_run_takes_task_and_context_when_it_asks_for_them():
    class Original(mesh.CustomAgent):
        role = "original"
        task = {"goal": "count caves"}

        async def run(self, task, context):
            self.seen = (task, context)
            return {"done": task["goal"]}

    class OnlyTask(mesh.CustomAgent):
        role = "only_task"

        async def run(self, task):
            self.seen = task

    class Plain(mesh.CustomAgent):
        role = "plain"

        async def run(self):
            self.seen = "no arguments"

    m = local_mesh()
    original = m.add(Original)
    only = m.add(OnlyTask)
    only.task = "set on the instance"
    plain = m.add(Plain)
    async with m:
        await eventually("run() of each", lambda: all(hasattr(a, "seen") for a in (original, only, plain)))
        task, context = original.seen
        assert task == {"goal": "count caves"}
        assert context["agent_id"] == original.agent_id and context["role"] == "original"
        assert context["node"] == m.node_name
        assert context["peers"] is original.peers and context["mesh"] is m
        await eventually("run()'s result", lambda: original.result == {"done": "count caves"})
        assert only.seen == "set on the instance"
        assert plain.seen == "no arguments"
        assert original.errors == only.errors == plain.errors == 0


def test_ctrl_c_stops_run_forever_gracefully(tmp_path):
    script = tmp_path / "agent.py"
    script.write_text(textwrap.dedent("""
        import asyncio, sys
        import mesh

        class Waiter(mesh.CustomAgent):
            role = "waiter"
            async def run(self):
                print("running", flush=True)
            async def teardown(self):
                print("teardown", flush=True)

        async def main():
            m = mesh.Mesh(config={"P2P_ENABLED": "false"})
            m.add(Waiter)
            await m.run_forever()
            print("stopped", m.running, flush=True)

        asyncio.run(main())
    """))
    p = subprocess.Popen([PYTHON, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert p.stdout.readline().strip() == "running"
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=DEADLINE)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, out
    assert out.split() == ["teardown", "stopped", "False"]


def test_the_llm_router_example():
    example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "python",
                           "llm_router.py")
    env = dict(os.environ, P2P_ENABLED="false")
    out = subprocess.run([PYTHON, example], env=env, capture_output=True, text=True, timeout=DEADLINE)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("Available peers")
    assert lines[-2].endswith('-> {"answer": "sunny, 21 °C", "asked": "What is the weather tomorrow?"}')
    assert lines[-1] == ("'Please sum 2 3 and 5' -> ask_peer "
                         '{"target": "calculator", "message": {"numbers": [2, 3, 5]}} -> {"sum": 10}')
