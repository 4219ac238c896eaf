"""mesh: Python agents on the C++ agent mesh (docs/python.md).

    import asyncio
    from mesh import Mesh, CustomAgent

    class Analyst(CustomAgent):
        role = "analyst"
        capabilities = ["analysis"]

        async def on_peer_request(self, msg):
            return {"summary": len(msg.data.get("items", []))}

    async def main():
        mesh = Mesh()              # P2P_ENABLED, JC_SWIM_PORT, JC_SEED_NODES, ...
        mesh.add(Analyst)
        await mesh.run_forever()   # until Ctrl-C: a graceful leave

    asyncio.run(main())
"""

from ._core import (GATHER_POLICIES, STRATEGIES, Agent, CustomAgent, GatherResult, ListenerAgent, Mesh,
                    MeshError, PeerClient, Response)
from ._mesh import IncomingMessage, PeerInfo

__all__ = [
    "Mesh", "Agent", "CustomAgent", "ListenerAgent", "PeerClient", "PeerInfo", "IncomingMessage",
    "MeshError", "Response", "GatherResult", "STRATEGIES", "GATHER_POLICIES",
]
