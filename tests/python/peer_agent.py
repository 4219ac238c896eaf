"""A Python node for the cluster tests: one "pyecho" agent, configured from
the environment like any node (P2P_ENABLED, JC_SWIM_PORT, JC_SEED_NODES,
...). It answers requests with what it got and who it is, and answers a
notify {"reply_to": agent_id} with a notify of its own to that agent.
Its card carries an input and an output schema (ECHO_IN, ECHO_OUT).
Prints "ready <agent_id>" once started; SIGTERM or SIGINT stops it with a
graceful leave, after which it prints "left".
"""

import asyncio

import mesh

ECHO_IN = {"type": "object", "properties": {"n": {"type": "integer"}, "via": {"type": "string"}}}
ECHO_OUT = {"type": "object", "required": ["echo", "by"],
            "properties": {"echo": {"type": "object"}, "by": {"type": "string"}}}


class PyEcho(mesh.CustomAgent):
    role = "pyecho"
    capabilities = ["echo", "python"]
    description = "a Python echo in another process"
    input_schema = ECHO_IN
    output_schema = ECHO_OUT

    async def on_peer_request(self, msg):
        return {"echo": msg.data, "by": self.agent_id, "node": self.peers.node_name, "from": msg.sender,
                "from_node": msg.sender_node}

    async def on_peer_notify(self, msg):
        target = msg.data.get("reply_to") if isinstance(msg.data, dict) else None
        if target:
            await self.peers.notify(target, {"reply": msg.data, "by": self.agent_id})


async def main():
    m = mesh.Mesh()
    agent = m.add(PyEcho)
    await m.start()
    print("ready", agent.agent_id, flush=True)
    await m.run_forever()
    print("left", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
