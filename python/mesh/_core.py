"""Mesh, Agent / CustomAgent and PeerClient for asyncio (docs/python.md).

The C++ runtime (mesh._mesh) does the work: membership, transport,
directory, conversations. This module gives it the original framework's
Python shape. Everything that waits is a coroutine that completes on the
event loop the mesh was started on; the C++ side reports completions
through one file descriptor that the loop watches (see module.cpp), so
nothing here polls or sleeps.
"""

import asyncio
import contextvars
import inspect
import itertools
import signal
import sys
import threading
import traceback
import uuid

from . import _mesh

__all__ = [
    "Mesh", "Agent", "CustomAgent", "ListenerAgent", "PeerClient", "MeshError", "GatherResult",
    "Response", "STRATEGIES", "GATHER_POLICIES",
]

STRATEGIES = ("first", "random", "round_robin", "least_recent")
GATHER_POLICIES = ("all", "first_k", "quorum")

# How long an ask_async entry is kept past its deadline, answered or not,
# before check_inbox forgets it (the transport's ask_retention).
ASK_RETENTION = 60.0

# The message a handler of this task is working on: what it sends belongs
# to the same conversation (its turn, depth and budget limits hold).
_handling = contextvars.ContextVar("mesh_handling", default=None)

# The original framework's Mesh(config={...}) keys, as the environment
# variables the C++ loader reads.
_CONFIG_KEYS = {
    "bind_host": "JC_SWIM_HOST",
    "bind_port": "JC_SWIM_PORT",
    "seed_nodes": "JC_SEED_NODES",
    "node_name": "JC_NODE_NAME",
    "p2p_enabled": "P2P_ENABLED",
}


class MeshError(RuntimeError):
    """A send that could not be made; .code says why ("oversized",
    "shutdown", "peer_dead", ...), as the C++ ErrorCode names."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


class Response:
    """A request's outcome (request_detailed): data and context of the
    answer, who answered, or the error when there is none."""

    __slots__ = ("data", "context", "sender", "sender_node", "error")

    def __init__(self, error, data, context, sender, sender_node):
        self.error = error
        self.data = data
        self.context = context
        self.sender = sender
        self.sender_node = sender_node

    @property
    def ok(self):
        return self.error is None

    def __repr__(self):
        if self.error:
            return f"<Response error={self.error}>"
        return f"<Response from {self.sender}@{self.sender_node}: {self.data!r}>"


class GatherResult:
    """request_all's result: responses (list of dicts with peer, data,
    sender, in order of arrival), missing (list of dicts with peer and
    error), and whether the policy was satisfied."""

    __slots__ = ("responses", "missing", "satisfied")

    def __init__(self, satisfied, responses, missing):
        self.satisfied = satisfied
        self.responses = [{"peer": p, "data": d, "sender": s} for p, d, s in responses]
        self.missing = [{"peer": p, "error": e} for p, e in missing]

    def __repr__(self):
        return (f"<GatherResult satisfied={self.satisfied} responses={len(self.responses)} "
                f"missing={len(self.missing)}>")


def _seconds(value, what):
    if value is None:
        return None
    # The usual case first: a plain float or int, not negative.
    kind = type(value)
    if (kind is float or kind is int) and value >= 0:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"mesh: {what} must be a number of seconds, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"mesh: {what} must be >= 0")
    return float(value)


def _runs_here(loop):
    """Whether `loop` is the running loop of this thread. A loop runs on
    this thread exactly when it is the running one, and asyncio's loops
    note their thread (_thread_id) while they run: comparing it with this
    thread's id is free, where get_running_loop makes a getpid() system
    call on Python 3.11 (about 1.8 us on a virtual machine, a tenth of an
    await's cost on the loop's thread). False for a loop without
    _thread_id: the caller then asks asyncio."""
    return loop is not None and getattr(loop, "_thread_id", None) == threading.get_ident()


def _check_strategy(strategy):
    if strategy not in STRATEGIES:
        raise ValueError(f"mesh: unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")


class PeerClient:
    """An agent's view of the mesh (agent.peers), or the node's own
    (mesh.peers). Discovery never waits; sends are coroutines."""

    def __init__(self, mesh, client, agent=None):
        self._mesh = mesh
        self._c = client
        self._agent = agent
        self._asks = {}  # ask_async: request id -> future of its (error, data, ...)

    # ---- who am I -------------------------------------------------------
    @property
    def my_id(self):
        return self._c.my_id

    @property
    def my_role(self):
        return self._c.my_role

    @property
    def node_name(self):
        return self._c.node_name

    def set_default_strategy(self, strategy):
        _check_strategy(strategy)
        self._c.set_default_strategy(strategy)

    @property
    def default_strategy(self):
        return self._c.default_strategy()

    # ---- discovery ------------------------------------------------------
    def get_peer(self, role):
        """One agent with this role (the default strategy picks), or None."""
        return self._c.get_peer(role or "")

    def discover(self, role=None, capability=None, strategy="first"):
        """Every agent with this role and/or capability, ordered by strategy."""
        if not role and not capability:
            raise ValueError("mesh: discover needs a role or a capability")
        _check_strategy(strategy)
        return self._c.discover(role or "", capability or "", strategy)

    def discover_one(self, role=None, capability=None, strategy="first"):
        if not role and not capability:
            raise ValueError("mesh: discover_one needs a role or a capability")
        _check_strategy(strategy)
        return self._c.discover_one(role or "", capability or "", strategy)

    def list_roles(self):
        return self._c.list_roles()

    def list_peers(self):
        """Every other agent as a dict: agent_id, role, capabilities,
        description, status, node, location ("local"/"remote"), node_health."""
        return self._c.list_peers()

    @property
    def registry(self):
        return self._c.registry()

    def record_peer_usage(self, peer_id):
        return self._c.record_peer_usage(peer_id)

    # ---- messaging ------------------------------------------------------
    async def notify(self, target, message, context=None):
        """Fire-and-forget; True when accepted for delivery."""
        return self._c.notify(target, message, context, _handling.get()) == "none"

    async def _outcome(self, target, message, timeout, context):
        """(error, data, ...) as the C++ side completes the request."""
        mesh = self._mesh
        fut, token = mesh._future()
        try:
            self._c.request(token, target, message, _seconds(timeout, "timeout"), context, _handling.get())
            return await fut
        finally:
            mesh._futures.pop(token, None)

    async def request(self, target, message, timeout=_mesh.DEFAULT_REQUEST_TIMEOUT, context=None):
        """The response's data, or None (timeout, no such target, its node
        died, its handler failed, ...; request_detailed says which)."""
        outcome = await self._outcome(target, message, timeout, context)
        return outcome[1] if outcome[0] is None else None

    async def request_detailed(self, target, message, timeout=_mesh.DEFAULT_REQUEST_TIMEOUT, context=None):
        return Response(*(await self._outcome(target, message, timeout, context)))

    async def respond(self, message, response, context=None):
        """Answers a request received by receive(); False when it was a
        notify, was answered already, or the mesh is not running."""
        return self._c.respond(message, response, context)

    async def broadcast(self, message, context=None, role=None, capability=None):
        """A notify to every other agent (or to those matching role /
        capability); returns how many were accepted."""
        return self._c.broadcast(message, context, role or "", capability or "")

    async def receive(self, timeout=None):
        """The next message for an agent without a handler for its kind,
        or None after `timeout` seconds (None: wait until one comes)."""
        if self._agent is None:
            return None
        timeout = _seconds(timeout, "timeout")
        agent = self._agent
        inbox = agent._inbox_queue()
        if timeout is None:
            msg = await inbox.get()
        elif timeout == 0:
            if inbox.empty():
                return None
            msg = inbox.get_nowait()
        else:
            # Not asyncio.wait_for: on Python 3.11 a get() that completes as
            # the timeout fires is cancelled with its message taken, which
            # is then lost. A get() cancelled before it completed leaves the
            # message in the queue.
            getter = asyncio.ensure_future(inbox.get())
            try:
                await asyncio.wait((getter,), timeout=timeout)
            finally:
                if not getter.done():
                    getter.cancel()
            if not getter.done() or getter.cancelled():
                return None
            msg = getter.result()
        agent._taken(msg)
        return msg

    async def ask_async(self, target, message, timeout=_mesh.DEFAULT_ASK_TIMEOUT, context=None):
        """Sends a request whose answer check_inbox collects; returns its
        id. ValueError when no agent matches target; MeshError when it
        cannot be sent (oversized, shutdown, ...)."""
        fut, token = self._mesh._future()
        try:
            self._c.request(token, target, message, _seconds(timeout, "timeout"), context, _handling.get())
        except BaseException:
            self._mesh._forget(token)
            raise
        # A failure known at once (no such target, oversized, shutdown) is
        # already queued: take it now, so that it raises here as the C++
        # ask_async does.
        self._mesh._drain()
        if fut.done():
            error = fut.result()[0]
            if error is not None:
                self._mesh._forget(token)
                if error == "target_unknown":
                    raise ValueError(f"mesh: no agent matches {target!r}")
                raise MeshError(f"mesh: ask_async to {target!r} failed: {error}", error)
        request_id = uuid.uuid4().hex
        fut.add_done_callback(lambda _f, t=token: self._mesh._forget(t))
        self._asks[request_id] = fut
        # Never checked, it would stay: forgotten a while after its deadline.
        keep = (_mesh.DEFAULT_ASK_TIMEOUT if timeout is None else timeout) + ASK_RETENTION
        asyncio.get_running_loop().call_later(keep, self._asks.pop, request_id, None)
        return request_id

    async def check_inbox(self, request_id, timeout=0, remove=True):
        """The answer's data to ask_async `request_id`, waiting up to
        `timeout` seconds; None when not there (yet), failed or unknown."""
        fut = self._asks.get(request_id)
        if fut is None:
            return None
        timeout = _seconds(timeout, "timeout")
        if not fut.done() and timeout:
            await asyncio.wait((fut,), timeout=timeout)
        if not fut.done():
            return None
        error, data = fut.result()[:2]
        if error is not None:
            self._asks.pop(request_id, None)
            return None
        if remove:
            self._asks.pop(request_id, None)
        return data

    async def request_all(self, message, role=None, capability=None, policy="all", k=0,
                          timeout=_mesh.DEFAULT_REQUEST_TIMEOUT, context=None):
        """The same request to every agent matching role / capability,
        gathered under policy: "all", "first_k" (k answers) or "quorum"."""
        if not role and not capability:
            raise ValueError("mesh: request_all needs a role or a capability")
        if policy not in GATHER_POLICIES:
            raise ValueError(f"mesh: unknown gather policy {policy!r} (one of {', '.join(GATHER_POLICIES)})")
        if policy == "first_k" and k <= 0:
            raise ValueError("mesh: first_k needs k > 0")
        fut, token = self._mesh._future()
        try:
            self._c.request_all(token, role or "", capability or "", message, policy, k,
                                _seconds(timeout, "timeout"), context)
        except BaseException:
            self._mesh._forget(token)
            raise
        try:
            return GatherResult(*await fut)
        finally:
            self._mesh._forget(token)

    # ---- for LLM agents ---------------------------------------------------
    def as_tools(self, role=None, capability=None, format="mcp"):
        from . import tools
        return tools.as_tools(self, role=role, capability=capability, format=format)

    def get_cognitive_context(self, role=None, capability=None):
        from . import tools
        return tools.cognitive_context(self, role=role, capability=capability)

    async def execute_tool(self, name, arguments):
        """Runs a call an LLM made to one of as_tools()' tools."""
        from . import tools
        return await tools.execute(self, name, arguments)


class Agent:
    """A Python agent. Class attributes say what it is (role is required):

        class Analyst(Agent):
            role = "analyst"
            capabilities = ["analysis"]
            description = "sums up findings"

            async def on_peer_request(self, msg):
                return {"summary": ...}

    A message goes to on_peer_request / on_peer_notify when the class
    defines it, otherwise to self.peers.receive(). run(), when defined,
    runs from start to stop: as run(self), or as the original framework's
    run(self, task, context) (see _run_args).
    """

    name = None
    role = None
    capabilities = ()
    description = ""
    # JSON Schemas (dicts) of the request this agent takes and of its
    # answer, carried by its card: LLM agents elsewhere see them in
    # peers.as_tools() (a tool of its own taking exactly input_schema).
    input_schema = None
    output_schema = None
    # What run(task, context) is given as its task; its return value is
    # kept in self.result.
    task = None
    # The id to register under; None: "<role>-<8 hex digits>".
    agent_id = None
    # Messages waiting for or in its handlers and inbox at once (0: the
    # node's JC_MAILBOX_LIMIT). Past it a request is answered
    # "mailbox_full" at once and a notify is dropped (counted in dropped).
    mailbox_limit = 0

    def __init__(self):
        self.peers = None
        self.mesh = None
        self.shutdown_requested = False
        self._inbox = None
        self._tasks = set()
        self.errors = 0  # exceptions from setup, run and handlers
        self.dropped = 0  # notifies dropped because the agent was full
        self.result = None  # what run(task, context) returned
        self._pending = 0  # messages delivered and not yet handled or received

    # What subclasses override.
    async def setup(self):
        pass

    async def teardown(self):
        pass

    async def run(self):
        pass

    async def on_peer_request(self, msg):
        return None

    async def on_peer_notify(self, msg):
        return None

    async def on_error(self, error, message=None):
        where = f" handling a {message.type} from {message.sender}" if message is not None else ""
        print(f"mesh: agent {self.agent_id}: {type(error).__name__}: {error}{where}", file=sys.stderr)
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)

    # ---- plumbing ---------------------------------------------------------
    def _overrides(self, name):
        return getattr(type(self), name) is not getattr(Agent, name)

    def _inbox_queue(self):
        if self._inbox is None:
            self._inbox = asyncio.Queue()
        return self._inbox

    def _spawn(self, coro):
        # Each message handled starts a task here. On the mesh's loop (the
        # drain, start, add) that loop is the running one: _runs_here says
        # so without get_running_loop's getpid() per message.
        loop = self.mesh._loop if self.mesh is not None else None
        if not _runs_here(loop):
            loop = asyncio.get_running_loop()
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _deliver(self, msg):
        # Each message keeps its place in the C++ mailbox until _taken(),
        # so a full agent is refused by the runtime, its senders told. The
        # check here only catches what slips between the C++ handler
        # taking a message and holding its place.
        if self._pending >= self._limit:
            if msg.is_request:
                self.peers._c.respond_error(msg, "mailbox_full")
            else:
                self.dropped += 1
            msg._release()
            return
        self._pending += 1
        if msg.is_request and self._handles_requests:
            self._spawn(self._handle_request(msg))
        elif not msg.is_request and self._handles_notifies:
            self._spawn(self._handle_notify(msg))
        else:
            self._inbox_queue().put_nowait(msg)

    async def _report(self, error, message):
        self.errors += 1
        try:
            r = self.on_error(error, message)
            if inspect.isawaitable(r):
                await r
        except Exception:  # on_error must not throw; one that does changes nothing
            traceback.print_exc(file=sys.stderr)

    def _taken(self, msg):
        self._pending -= 1
        msg._release()

    async def _handle_request(self, msg):
        token = _handling.set(msg)
        try:
            try:
                result = self.on_peer_request(msg)
                if inspect.isawaitable(result):
                    result = await result
                # None: answered already (respond), or to be answered later.
                if result is not None:
                    self.peers._c.respond(msg, result, None)
            except asyncio.CancelledError:
                self.peers._c.respond_error(msg, "shutdown")
                raise
            except Exception as e:
                # The requester learns at once (its request fails as
                # "rejected"), after the agent was told; the agent goes on.
                await self._report(e, msg)
                self.peers._c.respond_error(msg, "rejected")
        finally:
            self._taken(msg)
            _handling.reset(token)

    async def _handle_notify(self, msg):
        token = _handling.set(msg)
        try:
            r = self.on_peer_notify(msg)
            if inspect.isawaitable(r):
                await r
        except asyncio.CancelledError:
            raise
        except Exception as e:
            await self._report(e, msg)
        finally:
            self._taken(msg)
            _handling.reset(token)

    def _run_args(self):
        """What run() is called with, by its signature: run(self) nothing,
        run(self, task) the task, run(self, task, context) (or *args) the
        task and a context dict: agent_id, role, node, peers, mesh."""
        try:
            params = inspect.signature(self.run).parameters.values()
        except (TypeError, ValueError):
            return ()
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        n = 2 if any(p.kind == p.VAR_POSITIONAL for p in params) else min(len(positional), 2)
        if n == 0:
            return ()
        context = {"agent_id": self.agent_id, "role": self.role, "node": self.peers.node_name,
                   "peers": self.peers, "mesh": self.mesh}
        return (self.task, context)[:n]

    async def _run(self):
        try:
            self.result = await self.run(*self._run_args())
        except asyncio.CancelledError:
            raise
        except Exception as e:
            await self._report(e, None)


class CustomAgent(Agent):
    """The original framework's name for an agent with handlers and/or a
    run() loop of its own; the same as Agent here."""


# The original framework's handler-only profile.
ListenerAgent = CustomAgent


class Mesh:
    """A node hosting Python agents.

    Configured as the C++ programs are: the environment (P2P_ENABLED,
    JC_SWIM_HOST, JC_SWIM_PORT, JC_SEED_NODES, JC_NODE_NAME, ...), and a
    YAML file named by JC_CONFIG. `config` overrides them: environment
    variable names, or the original's keys (bind_host, bind_port,
    seed_nodes, node_name, p2p_enabled). `mode` "p2p" / "distributed"
    turns P2P on, "autonomous" / "local" off. `args` are the C++ programs'
    flags (["--swim-port", "7946"]).
    """

    def __init__(self, mode=None, config=None, *, args=None, seed=0):
        overrides = {}
        if mode is not None:
            if mode in ("p2p", "distributed"):
                overrides["P2P_ENABLED"] = "true"
            elif mode in ("autonomous", "local"):
                overrides["P2P_ENABLED"] = "false"
            else:
                raise ValueError(f"mesh: unknown mode {mode!r} (p2p, distributed, autonomous, local)")
        for key, value in (config or {}).items():
            name = _CONFIG_KEYS.get(key, key)
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, (list, tuple)):
                value = ",".join(str(v) for v in value)
            overrides[name] = str(value)
        self._c = _mesh.Mesh(overrides, list(args or []), seed)
        self._tokens = itertools.count(1)
        self._futures = {}
        self._agents = []
        self._by_token = {}
        self._loop = None
        self._started = False
        self._stopped = False
        self._stop_event = None
        self.peers = PeerClient(self, self._c.node_client())

    # ---- what the node is -------------------------------------------------
    @property
    def node_name(self):
        return self._c.node_name

    @property
    def p2p_enabled(self):
        return self._c.p2p

    @property
    def swim_port(self):
        return self._c.swim_port

    @property
    def zmq_port(self):
        return self._c.zmq_port

    @property
    def agents(self):
        return list(self._agents)

    @property
    def running(self):
        return self._c.running()

    def readiness(self):
        """(ready, status, reason), as the admin API's /readyz."""
        return self._c.readiness()

    def get_agent(self, role_or_id):
        for a in self._agents:
            if a.agent_id == role_or_id:
                return a
        for a in self._agents:
            if a.role == role_or_id:
                return a
        return None

    # ---- agents -----------------------------------------------------------
    def add(self, agent, *args, **kwargs):
        """Adds an Agent subclass (instantiated with args) or instance;
        returns the instance. Before or after start()."""
        if inspect.isclass(agent):
            if not issubclass(agent, Agent):
                raise TypeError(f"mesh: {agent.__name__} is not a mesh.Agent")
            agent = agent(*args, **kwargs)
        elif not isinstance(agent, Agent):
            raise TypeError(f"mesh: {type(agent).__name__} is not a mesh.Agent")
        if getattr(agent, "mesh", None) is not None:
            raise ValueError("mesh: this agent was added already")
        # A subclass whose __init__ did not call Agent.__init__ still works.
        for attr, default in (("shutdown_requested", False), ("_inbox", None), ("errors", 0), ("dropped", 0),
                              ("_pending", 0), ("result", None)):
            if attr not in agent.__dict__:
                setattr(agent, attr, default)
        if "_tasks" not in agent.__dict__:
            agent._tasks = set()
        if not agent.role:
            raise ValueError(f"mesh: {type(agent).__name__} has no role")
        caps = agent.capabilities
        if isinstance(caps, str):
            caps = [caps]
        for attr in ("input_schema", "output_schema"):
            schema = getattr(agent, attr)
            if schema is not None and not isinstance(schema, dict):
                raise ValueError(f"mesh: {type(agent).__name__}.{attr} must be a dict (a JSON Schema object) "
                                 f"or None, not {type(schema).__name__}")
        token = next(self._tokens)
        agent_id = self._c.add_agent(agent.role, list(caps), agent.description or "", agent.agent_id or "", 1,
                                     agent.mailbox_limit, token, agent.input_schema, agent.output_schema)
        agent.agent_id = agent_id
        if agent.name is None:
            agent.name = agent_id
        agent.mesh = self
        agent.peers = PeerClient(self, self._c.client(agent_id), agent)
        agent._limit = agent.mailbox_limit or self._c.mailbox_limit
        agent._handles_requests = agent._overrides("on_peer_request")
        agent._handles_notifies = agent._overrides("on_peer_notify")
        self._agents.append(agent)
        self._by_token[token] = agent
        if self._started and not self._stopped:
            # Added to a running mesh: set up and run it now.
            self._spawn_late(agent)
        return agent

    # Added after start(): its setup and run, on the mesh's loop.
    def _spawn_late(self, agent):
        async def go():
            try:
                await agent.setup()
            except Exception as e:
                await agent._report(e, None)
                return
            if agent._overrides("run"):
                await agent._run()
        agent._spawn(go())

    # ---- life -------------------------------------------------------------
    async def start(self):
        """Sets up every agent (setup()), opens the node (transport, and
        with P2P on membership and the join) and starts each agent's run()."""
        if self._started:
            raise RuntimeError("mesh: start() called twice")
        self._attach()
        self._started = True
        for a in self._agents:
            await a.setup()
        # Binding and the first join attempt may take a moment: off the loop.
        await asyncio.get_running_loop().run_in_executor(None, self._c.start)
        for a in self._agents:
            if a._overrides("run"):
                a._spawn(a._run())

    async def run_forever(self):
        """Starts the mesh if needed and runs until stop(), request_stop(),
        SIGINT or SIGTERM; then stops it (a graceful leave)."""
        if not self._started:
            await self.start()
        loop = asyncio.get_running_loop()
        self._stop_event = self._stop_event or asyncio.Event()
        handled = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self._stop_event.set)
                    handled.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        try:
            if not self._stopped:
                await self._stop_event.wait()
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            await self.stop()

    def request_stop(self):
        """Makes run_forever() return (and stop). From the mesh's loop."""
        if self._stop_event is None:
            self._stop_event = asyncio.Event()
        self._stop_event.set()

    async def stop(self):
        """Stops the agents (their tasks are cancelled, teardown() runs),
        leaves the cluster gracefully and closes the node. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._stop_event is not None:
            self._stop_event.set()
        tasks = []
        for a in self._agents:
            a.shutdown_requested = True
            for t in list(a._tasks):
                t.cancel()
                tasks.append(t)
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await asyncio.get_running_loop().run_in_executor(None, self._c.stop)
        self._drain()
        for a in self._agents:
            try:
                await a.teardown()
            except Exception as e:
                await a._report(e, None)
        self._detach()

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.stop()

    # ---- the C++ side's completions ---------------------------------------
    def _attach(self):
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None and not self._loop.is_closed():
            raise RuntimeError("mesh: a Mesh serves the one event loop it was first used on")
        self._loop = loop
        loop.add_reader(self._c.fd, self._drain)

    def _detach(self):
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._c.fd)
        self._loop = None

    def _future(self):
        # Every request and gather asks whether it runs on the mesh's loop:
        # _runs_here, and anything else (no loop yet, another loop, a loop
        # without _thread_id) takes _attach's full check.
        loop = self._loop
        if not _runs_here(loop):
            self._attach()  # the first use, or the wrong loop (raises)
            loop = self._loop
        token = next(self._tokens)
        fut = loop.create_future()
        self._futures[token] = fut
        return fut, token

    def _forget(self, token):
        self._futures.pop(token, None)

    def _drain(self):
        for token, kind, value in self._c.drain():
            try:
                if kind == 1:
                    agent = self._by_token.get(token)
                    if agent is not None:
                        agent._deliver(value)
                    continue
                fut = self._futures.get(token)
                if fut is not None and not fut.done():
                    fut.set_result(value)
            except Exception:  # one bad item must not lose the rest of the batch
                traceback.print_exc(file=sys.stderr)
