"""The scout / analyst example in Python, speaking the same messages as the
C++ agents of mesh-agents, so the two mix in one cluster.

    scout    role "scout", capabilities "search", "validate". Every --tick
             seconds (or on a {"kind": "search"} notify) it finds an item,
             asks another scout to validate it (request) and notifies an
             analyst of the finding with the verdict. It answers
             {"kind": "validate"} requests.
    analyst  role "analyst", capabilities "analysis", "summary". Keeps the
             findings it is told of; answers {"kind": "summary"} requests.

Configuration is the node's usual one, from the environment (P2P_ENABLED,
JC_SWIM_HOST, JC_SWIM_PORT, JC_SEED_NODES, JC_NODE_NAME, ...). Runs until
Ctrl-C (a graceful leave) or --duration seconds.

    PYTHONPATH=build/python python3 examples/python/scout_analyst.py --agents scout,analyst
"""

import argparse
import asyncio
import itertools

from mesh import CustomAgent, Mesh

FINDS = ["a dry cave", "a spring", "an old map", "a bird's nest", "a trail", "a locked box", "a lantern"]


def say(mesh, line):
    print(f"[{mesh.node_name}] {line}", flush=True)


class ScoutAgent(CustomAgent):
    role = "scout"
    capabilities = ["search", "validate"]
    description = "finds items and validates other scouts' finds"
    tick = 2.0

    def __init__(self):
        super().__init__()
        self.numbers = itertools.count(1)

    async def run(self):
        if self.tick <= 0:
            return
        while not self.shutdown_requested:
            await asyncio.sleep(self.tick)
            await self.search()

    async def search(self):
        n = next(self.numbers)
        item = {"number": n, "what": FINDS[n % len(FINDS)], "found_by": self.agent_id,
                "node": self.peers.node_name}
        validator = self.peers.discover_one(role="scout", capability="validate", strategy="round_robin")
        validation = None
        if validator is None:
            verdict = "not validated: no other scout"
        else:
            r = await self.peers.request_detailed(validator.agent_id, {"kind": "validate", "item": item},
                                                  timeout=5)
            if r.ok:
                validation = r.data
                verdict = (f"{'validated' if r.data.get('valid') else 'rejected'} by {r.sender} "
                           f"on node {r.sender_node}")
            else:
                verdict = f"validation by {validator.agent_id} failed: {r.error}"
        what = f"finding #{n} \"{item['what']}\" ({verdict})"
        analyst = self.peers.get_peer("analyst")
        if analyst is None:
            say(self.mesh, f"{self.agent_id}: {what}, but no analyst to tell")
            return
        ok = await self.peers.notify(analyst.agent_id, {"kind": "finding", "item": item, "validation": validation})
        say(self.mesh, f"{self.agent_id} → {analyst.agent_id}: {what}" + ("" if ok else " NOT delivered"))

    async def on_peer_request(self, msg):
        if msg.data.get("kind") != "validate":
            return {"error": "a scout answers {\"kind\": \"validate\"} requests"}
        item = msg.data.get("item") or {}
        # The C++ scouts' deterministic check: every fifth kind of find is refused.
        valid = (int(item.get("number", 0)) * 7 + len(str(item.get("what", "")))) % 5 != 0
        return {"valid": valid, "checked_by": self.agent_id, "node": self.peers.node_name}

    async def on_peer_notify(self, msg):
        if isinstance(msg.data, dict) and msg.data.get("kind") == "search":
            await self.search()
        else:
            say(self.mesh, f"{self.agent_id} ← {msg.sender} (node {msg.sender_node}): {msg.data}")


class AnalystAgent(CustomAgent):
    role = "analyst"
    capabilities = ["analysis", "summary"]
    description = "collects the scouts' findings"

    def __init__(self):
        super().__init__()
        self.findings = 0
        self.validated = 0
        self.by_scout = {}
        self.latest = None

    async def on_peer_notify(self, msg):
        if not isinstance(msg.data, dict) or msg.data.get("kind") != "finding":
            say(self.mesh, f"{self.agent_id} ← {msg.sender} (node {msg.sender_node}): {msg.data}")
            return
        item = msg.data.get("item") or {}
        valid = bool((msg.data.get("validation") or {}).get("valid"))
        self.findings += 1
        self.validated += valid
        self.by_scout[msg.sender] = self.by_scout.get(msg.sender, 0) + 1
        self.latest = item
        say(self.mesh, f"{self.agent_id} ← {msg.sender} (node {msg.sender_node}): finding #{item.get('number')}"
                       f"{', validated' if valid else ', not validated'}; {self.findings} so far")

    async def on_peer_request(self, msg):
        if msg.data.get("kind") != "summary":
            return {"error": "an analyst answers {\"kind\": \"summary\"} requests"}
        return {"findings": self.findings, "validated": self.validated, "by_scout": self.by_scout,
                "latest": self.latest, "analyst": self.agent_id, "node": self.peers.node_name}


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="scout,analyst",
                        help="agents to host, comma-separated, repeats allowed (scout, analyst)")
    parser.add_argument("--tick", type=float, default=2.0, help="seconds between a scout's searches (0: never)")
    parser.add_argument("--duration", type=float, default=0, help="stop after S seconds (default: Ctrl-C)")
    args = parser.parse_args()

    mesh = Mesh()
    ScoutAgent.tick = args.tick
    kinds = {"scout": ScoutAgent, "analyst": AnalystAgent}
    for name in args.agents.split(","):
        if name not in kinds:
            parser.error(f"unknown agent kind {name!r} (scout, analyst)")
        agent = mesh.add(kinds[name])
        say(mesh, f"{agent.agent_id} ({agent.role}) started")
    await mesh.start()
    if args.duration > 0:
        asyncio.get_running_loop().call_later(args.duration, mesh.request_stop)
    await mesh.run_forever()
    say(mesh, "left the mesh")


if __name__ == "__main__":
    asyncio.run(main())
