#!/usr/bin/python3
"""pyzmq + json echo: the Python floor for bench/transport_vs_zmq.

What a Python framework built on pyzmq pays at least: the client encodes a
JSON document of about 256 bytes, sends it over a DEALER, the server (a
second Python process, ROUTER on tcp://127.0.0.1) decodes it, encodes it
again and sends it back, and the client decodes the reply. One request in
flight. Prints one JSON object on stdout:

    {"p50_us": ..., "p99_us": ..., "count": ..., "doc_bytes": ..., ...}

or, when pyzmq is missing, {"error": "..."} with exit code 2.

    pyzmq_echo.py [--count 20000] [--warmup 1000] [--max-seconds 3]
    pyzmq_echo.py --serve        (the server side; started by the client)
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

try:
    import zmq
except ImportError as e:  # the caller prints a note and skips the row
    print(json.dumps({"error": "import zmq failed: %s (%s)" % (e, sys.executable)}))
    sys.exit(2)


def make_document():
    """A request shaped like a framework's envelope, about 256 bytes of JSON."""
    doc = {
        "id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "type": "request",
        "sender": {"node": "cli", "agent": "bench"},
        "target": "echo",
        "created_ms": 1700000000000,
        "deadline_ms": 1700000005000,
        "context": {},
        "payload": "",
    }
    fill = 256 - len(json.dumps(doc).encode())
    doc["payload"] = "x" * max(0, fill)
    return doc


def serve():
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    print("port %d" % port, flush=True)

    # The client holds our stdin open; when it goes away, so do we.
    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    while True:
        ident, body = router.recv_multipart()
        doc = json.loads(body)
        router.send_multipart([ident, json.dumps(doc).encode()])


def percentile(sorted_ns, q):
    k = max(0, min(len(sorted_ns) - 1, int(-(-q * len(sorted_ns) // 1)) - 1))
    return sorted_ns[k]


def client(count, warmup, max_seconds):
    server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = server.stdout.readline().decode()
        if not line.startswith("port "):
            raise RuntimeError("server did not start: %r" % line)
        port = int(line.split()[1])
        ctx = zmq.Context()
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.RCVTIMEO, 5000)
        dealer.connect("tcp://127.0.0.1:%d" % port)
        doc = make_document()
        doc_bytes = len(json.dumps(doc).encode())

        def one():
            dealer.send(json.dumps(doc).encode())
            reply = json.loads(dealer.recv())
            if reply["id"] != doc["id"]:
                raise RuntimeError("wrong reply")

        for _ in range(warmup):
            one()
        samples = []
        clock = time.perf_counter_ns
        deadline = clock() + int(max_seconds * 1e9)
        for _ in range(count):
            t0 = clock()
            one()
            t1 = clock()
            samples.append(t1 - t0)
            if t1 > deadline:
                break
        samples.sort()
        dealer.close()
        ctx.term()
        return {
            "p50_us": percentile(samples, 0.50) / 1000.0,
            "p99_us": percentile(samples, 0.99) / 1000.0,
            "count": len(samples),
            "doc_bytes": doc_bytes,
            "python": sys.version.split()[0],
            "pyzmq": zmq.__version__,
            "libzmq": zmq.zmq_version(),
        }
    finally:
        server.kill()
        server.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--serve", action="store_true")
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--max-seconds", type=float, default=3.0)
    a = p.parse_args()
    if a.serve:
        serve()
        return
    print(json.dumps(client(max(1, a.count), max(0, a.warmup), a.max_seconds)))


if __name__ == "__main__":
    main()
