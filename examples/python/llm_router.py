"""An LLM agent's view of the mesh: the peers as tools, and a system prompt
that says who is reachable.

A "router" agent takes questions. For each it builds what a model would
get, the system prompt (peers.get_cognitive_context()) and the tools
(peers.as_tools(format="openai")), lets the model choose a tool call and
runs it with peers.execute_tool(). No model is called here: choose() is a
stand-in that picks the peer whose capabilities name a word of the
question, the way a model would read the tool descriptions. Swap it for
your client's chat-completions call, passing `tools` and the prompt.

    PYTHONPATH=build/python python3 examples/python/llm_router.py
"""

import asyncio
import json

from mesh import CustomAgent, Mesh


class Weather(CustomAgent):
    role = "weather"
    capabilities = ["forecast", "weather"]
    description = "answers {\"question\": ...} about the weather"

    async def on_peer_request(self, msg):
        return {"answer": "sunny, 21 °C", "asked": msg.data.get("question")}


class Arithmetic(CustomAgent):
    role = "calculator"
    capabilities = ["arithmetic", "sum"]
    description = "adds the numbers in {\"numbers\": [...]}"

    async def on_peer_request(self, msg):
        return {"sum": sum(msg.data.get("numbers", []))}


def choose(system_prompt, tools, question):
    """Stands in for a model: returns (tool name, JSON arguments)."""
    ask = next(t["function"] for t in tools if t["function"]["name"] == "ask_peer")
    roles = ask["parameters"]["properties"]["target"].get("enum", [])
    words = {w.strip("?.,!").lower() for w in question.split()}
    for line in system_prompt.splitlines():
        if not line.startswith("- "):
            continue
        role = line[2:].split(" ", 1)[0]
        caps = line.split("capabilities: ", 1)[-1].rstrip(")").split(", ")
        if role in roles and words & set(caps):
            numbers = [int(w) for w in question.split() if w.isdigit()]
            message = {"numbers": numbers} if numbers else {"question": question}
            return "ask_peer", json.dumps({"target": role, "message": message})
    return "list_peers", "{}"


class Router(CustomAgent):
    role = "router"
    description = "routes questions to the peer that can answer them"

    async def ask(self, question):
        prompt = "You route questions to other agents.\n\n" + self.peers.get_cognitive_context()
        tools = self.peers.as_tools(format="openai")
        name, arguments = choose(prompt, tools, question)
        result = await self.peers.execute_tool(name, arguments)
        print(f"{question!r} -> {name} {arguments} -> {json.dumps(result, ensure_ascii=False)}", flush=True)
        return result


async def main():
    mesh = Mesh()
    mesh.add(Weather)
    mesh.add(Arithmetic)
    router = mesh.add(Router)
    async with mesh:
        print(router.peers.get_cognitive_context(), flush=True)
        await router.ask("What is the weather tomorrow?")
        await router.ask("Please sum 2 3 and 5")


if __name__ == "__main__":
    asyncio.run(main())
