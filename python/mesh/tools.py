"""Peers as LLM tools (docs/python.md, "For LLM agents").

as_tools() renders who is reachable as tool definitions an LLM can call,
in the shape of MCP's tools/list entries ({"name", "description",
"inputSchema"}) or of OpenAI function calling ({"type": "function",
"function": {"name", "description", "parameters"}}). There are three
tools: ask_peer (a request to one peer, chosen by role or agent_id, whose
answer is the tool's result), notify_peer (fire-and-forget) and
list_peers; and for each peer whose card carries an input schema a tool
of its own, "ask_<role>" (or "ask_<agent_id>"), whose parameters are that
schema. execute() runs a call the LLM made. get_cognitive_context() is
the same knowledge as text for a system prompt.
"""

import json

__all__ = ["as_tools", "cognitive_context", "execute", "TOOL_NAMES"]

TOOL_NAMES = ("ask_peer", "notify_peer", "list_peers")


def as_tools(client, role=None, capability=None, format="mcp"):
    """The tools for the peers `client` can reach (all of them, or those
    matching role / capability), as MCP ("mcp") or OpenAI ("openai")
    tool definitions. Rendered by the C++ runtime (mesh/peer_tools.hpp),
    so C++ and Python agents describe the mesh alike."""
    return client._c.as_tools(role or "", capability or "", format)


def cognitive_context(client, role=None, capability=None):
    """Who is reachable, for a system prompt: a line per role with its
    capabilities, its agents' descriptions below."""
    return client._c.cognitive_context(role or "", capability or "")


async def execute(client, name, arguments):
    """Runs a tool call: `arguments` is the dict (or its JSON text) the LLM
    produced. Returns what to hand back to it: the answer's data for
    ask_peer, {"error": ...} when there is none."""
    if isinstance(arguments, str):
        arguments = json.loads(arguments) if arguments.strip() else {}
    if not isinstance(arguments, dict):
        raise TypeError("mesh: tool arguments must be a dict or a JSON object")
    if name == "list_peers":
        return {"peers": client.list_peers()}
    if name not in ("ask_peer", "notify_peer"):
        own = client._c.peer_tool(name) if isinstance(name, str) else None
        if own is None:
            raise ValueError(f"mesh: unknown tool {name!r} (one of {', '.join(TOOL_NAMES)}, "
                             "or a peer's own tool from as_tools())")
        # A peer's own tool: the arguments are its request (or hold it in
        # "message" when its input schema is no object schema).
        target, wrapped = own
        message = arguments.get("message") if wrapped else arguments
        r = await client.request_detailed(target, message, timeout=30)
        if r.error is not None:
            return {"error": r.error}
        return r.data
    target = arguments.get("target")
    message = arguments.get("message")
    if not isinstance(target, str) or not target:
        raise ValueError(f"mesh: {name} needs a target (a role or an agent_id)")
    if message is None:
        message = {}
    if name == "notify_peer":
        return {"delivered": await client.notify(target, message)}
    timeout = arguments.get("timeout", 30)
    r = await client.request_detailed(target, message, timeout=timeout)
    if r.error is not None:
        return {"error": r.error}
    return r.data
