#!/usr/bin/python3
"""A Python agent's request to a C++ agent on another node, against the
pyzmq + json floor (bench/pyzmq_echo.py) run beside it.

Ours: a Python mesh.Agent (P2P on, 127.0.0.1) awaits peers.request() to
the "echo" agent of python-echo-node (a C++ node in another process),
which answers with the request's payload: the ~256-byte document
pyzmq_echo.py sends. One request in flight. The floor: pyzmq_echo.py, a
pyzmq DEALER -> ROUTER echo between two Python processes with json on both
sides. Beside them, the runtime alone: the same requests from a C++
node's client, blocking (python-echo-node --ask: a request channel, the
caller reads its reply itself) and through request_then, the call the
binding makes (--ask-async: the transport thread reads the reply and
hands it over), to tell the binding's share from the runtime's. Rounds
of the four alternate; the medians over rounds of p50, p99 and of each
round's ratio are printed as one JSON object, with each round's figures;
ratio < 1 means the binding is faster than the floor. Nothing is
asserted about speed.

    PYTHONPATH=build/python python3 bench/python_binding.py \
        --echo-node build/python/python-echo-node [--rounds 3] [--count 5000] [--quick]
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

import mesh

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 1000 < 65536:
            return port


def percentile(sorted_ns, q):
    k = max(0, min(len(sorted_ns) - 1, int(-(-q * len(sorted_ns) // 1)) - 1))
    return sorted_ns[k]


def node_env(port, name, seed=None):
    env = {"P2P_ENABLED": "true", "JC_SWIM_HOST": "127.0.0.1", "JC_SWIM_PORT": str(port), "JC_NODE_NAME": name,
           "JC_PROFILE": "local", "JC_LOG_LEVEL": "warn"}
    if seed:
        env["JC_SEED_NODES"] = f"127.0.0.1:{seed}"
    return env


class Client(mesh.Agent):
    role = "bench-client"


def floor_round(count, warmup, max_seconds):
    py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    r = subprocess.run([py, os.path.join(HERE, "pyzmq_echo.py"), "--count", str(count), "--warmup", str(warmup),
                        "--max-seconds", str(max_seconds)], capture_output=True, text=True, timeout=120)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"error": r.stdout + r.stderr}


def cpp_round(echo_node, echo_port, doc, count, warmup, max_seconds, mode="--ask"):
    env = dict(os.environ)
    env.update(node_env(free_port(), "bench-cpp-client", seed=echo_port))
    r = subprocess.run([echo_node, mode, str(count), str(warmup), str(max_seconds), json.dumps(doc)], env=env,
                       capture_output=True, text=True, timeout=120)
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    return {"error": r.stdout + r.stderr}


async def measure(echo_node, echo_port, rounds, count, warmup, max_seconds):
    """Alternates rounds of ours and of the floor, so that both see the
    same machine (a compiler next door moves either by 2x)."""
    doc = json.loads(subprocess.check_output([sys.executable, "-c",
                                              "import sys; sys.path.insert(0, %r); import pyzmq_echo, json; "
                                              "print(json.dumps(pyzmq_echo.make_document()))" % HERE]))
    m = mesh.Mesh(config=node_env(free_port(), "bench-py", seed=echo_port))
    client = m.add(Client)
    await m.start()
    ours, floor, cpp, cpp_async = [], [], [], []
    try:
        end = time.monotonic() + 30
        while client.peers.get_peer("echo") is None:
            if time.monotonic() > end:
                raise RuntimeError("the C++ echo node was not discovered within 30 s")
            await asyncio.sleep(0.02)
        target = client.peers.get_peer("echo").agent_id
        request = client.peers.request
        loop = asyncio.get_running_loop()
        for _ in range(rounds):
            for _ in range(warmup):
                if await request(target, doc, 5) != doc:
                    raise RuntimeError("wrong echo")
            samples = []
            clock = time.perf_counter_ns
            deadline = clock() + int(max_seconds * 1e9)
            for _ in range(count):
                t0 = clock()
                r = await request(target, doc, 5)
                t1 = clock()
                if r is None or r["id"] != doc["id"]:
                    raise RuntimeError("no or wrong echo")
                samples.append(t1 - t0)
                if t1 > deadline:
                    break
            samples.sort()
            ours.append({"p50_us": percentile(samples, 0.50) / 1000.0, "p99_us": percentile(samples, 0.99) / 1000.0,
                         "count": len(samples)})
            floor.append(await loop.run_in_executor(None, floor_round, count, warmup, max_seconds))
            cpp.append(await loop.run_in_executor(None, cpp_round, echo_node, echo_port, doc, count, warmup,
                                                  max_seconds))
            cpp_async.append(await loop.run_in_executor(None, cpp_round, echo_node, echo_port, doc, count, warmup,
                                                        max_seconds, "--ask-async"))
    finally:
        await m.stop()
    return ours, floor, cpp, cpp_async, len(json.dumps(doc).encode())


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--echo-node", default=os.environ.get("MESH_PYTHON_ECHO_NODE", ""),
                   help="the python-echo-node program of the same build")
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--max-seconds", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of each (the median is reported)")
    p.add_argument("--quick", action="store_true", help="a smoke run: one round of 300 requests each")
    a = p.parse_args()
    if a.quick:
        a.count, a.warmup, a.max_seconds, a.rounds = 300, 50, 2.0, 1
    if not a.echo_node:
        p.error("--echo-node is required (the build's python/python-echo-node)")

    echo_port = free_port()
    env = dict(os.environ)
    env.update(node_env(echo_port, "bench-cpp"))
    echo = subprocess.Popen([a.echo_node], env=env, stdout=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in echo.stdout:  # log lines may come first
            if line.startswith("ready "):
                break
            seen.append(line)
        else:
            raise RuntimeError("python-echo-node did not start: " + "".join(seen))
        # Keep reading its output, so that a chatty node never blocks on the pipe.
        threading.Thread(target=lambda: [None for _ in echo.stdout], daemon=True).start()
        ours, floor, cpp, cpp_async, doc_bytes = asyncio.run(measure(a.echo_node, echo_port, a.rounds, a.count, a.warmup,
                                                          a.max_seconds))
    finally:
        echo.terminate()
        try:
            echo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            echo.kill()
            echo.wait()

    out = {"doc_bytes": doc_bytes, "rounds": a.rounds, "binding": ours, "pyzmq_json": floor, "cpp_client": cpp,
           "cpp_request_then": cpp_async}
    for q in ("p50", "p99"):
        out[f"binding_{q}_us"] = median([o[f"{q}_us"] for o in ours])
        if all("p50_us" in f for f in floor):
            out[f"pyzmq_{q}_us"] = median([f[f"{q}_us"] for f in floor])
            out[f"ratio_{q}"] = round(median([o[f"{q}_us"] / f[f"{q}_us"] for o, f in zip(ours, floor)]), 3)
        if all("p50_us" in c for c in cpp):
            out[f"cpp_client_{q}_us"] = median([c[f"{q}_us"] for c in cpp])
            out[f"binding_vs_cpp_{q}"] = round(median([o[f"{q}_us"] / c[f"{q}_us"] for o, c in zip(ours, cpp)]), 3)
        if all("p50_us" in c for c in cpp_async):
            out[f"cpp_request_then_{q}_us"] = median([c[f"{q}_us"] for c in cpp_async])
            out[f"binding_vs_cpp_request_then_{q}"] = round(
                median([o[f"{q}_us"] / c[f"{q}_us"] for o, c in zip(ours, cpp_async)]), 3)
    print(json.dumps(out))
    if not all("p50_us" in c for c in cpp):
        sys.exit("python-echo-node --ask failed: " + json.dumps(cpp))
    if not all("p50_us" in c for c in cpp_async):
        sys.exit("python-echo-node --ask-async failed: " + json.dumps(cpp_async))


if __name__ == "__main__":
    main()
