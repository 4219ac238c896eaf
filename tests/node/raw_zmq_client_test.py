#!/usr/bin/env python3
"""A raw ZeroMQ client (pyzmq) that holds no member key gets nothing from a
mesh-node whose cluster has a gossip key.

The node (P2P on, gossip key set, so CURVE without further configuration)
is started on 127.0.0.1 with ports of its own. Then, against its ZeroMQ
port:
  1. a plain DEALER (no CURVE): the handshake fails on the mechanism;
  2. a CURVE DEALER that knows the node's public key (read from its gossip
     tags through the admin API) but has a key of its own that no member
     holds: the node's ZAP handler refuses it (HANDSHAKE_FAILED_AUTH),
     and the node counts it (mesh_transport_frames_dropped_total{reason=
     "unauthenticated"}).
Neither gets an answer to the envelope-shaped frames it sends.

Usage: raw_zmq_client_test.py <mesh-node binary>
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import zmq
from zmq.utils.monitor import recv_monitor_message

GOSSIP_KEY = "cg8StVXbQJ0gPvMd9o7yrg=="
DEADLINE = 30.0  # seconds: generous, the node may run under a sanitizer


def free_ports(n):
    # The kernel's picks (above 32768), as the C++ tests' free_port() makes
    # them, and like it never the same port twice: every probe socket stays
    # open until all n are chosen (the kernel may hand out a port again as
    # soon as its socket is closed).
    probes = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in probes]
    finally:
        for s in probes:
            s.close()


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read().decode()


def wait_until(what, pred):
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        try:
            value = pred()
            if value:
                return value
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def handshake_outcome(ctx, endpoint, configure):
    """Connects a DEALER set up by `configure`, sends a frame, and returns
    (the first handshake event, whether anything came back)."""
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    configure(dealer)
    monitor = dealer.get_monitor_socket(
        zmq.EVENT_HANDSHAKE_SUCCEEDED
        | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    )
    dealer.connect(endpoint)
    # Shaped like a request (msgpack bytes); it must reach no agent.
    dealer.send(b"\x92\x01\xa4ping", zmq.NOBLOCK)
    event = None
    if monitor.poll(int(DEADLINE * 1000)):
        event = recv_monitor_message(monitor)["event"]
    answered = dealer.poll(2000) != 0
    dealer.disable_monitor()
    monitor.close()
    dealer.close()
    return event, answered


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    swim, zmq_port, admin = free_ports(3)
    with tempfile.TemporaryDirectory() as tmp:
        log = open(os.path.join(tmp, "node.log"), "w")
        node = subprocess.Popen(
            [binary, "--node-name", "guarded", "--swim-host", "127.0.0.1", "--swim-port", str(swim),
             "--zmq-port", str(zmq_port), "--admin-port", str(admin), "--profile", "local",
             "--gossip-key", GOSSIP_KEY],
            env=dict(os.environ, P2P_ENABLED="true"), stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until("the node's /healthz", lambda: '"ok"' in get(admin, "/healthz"))
            members = json.loads(get(admin, "/v1/members"))
            server_key = members[0]["tags"]["zkey"].encode()
            endpoint = f"tcp://127.0.0.1:{zmq_port}"
            ctx = zmq.Context()

            event, answered = handshake_outcome(ctx, endpoint, lambda s: None)
            assert event != zmq.EVENT_HANDSHAKE_SUCCEEDED, "a plain client completed the handshake"
            assert not answered, "a plain client got an answer"

            public, secret = zmq.curve_keypair()

            def curve(s):
                s.curve_serverkey = server_key
                s.curve_publickey = public
                s.curve_secretkey = secret

            event, answered = handshake_outcome(ctx, endpoint, curve)
            assert event == zmq.EVENT_HANDSHAKE_FAILED_AUTH, f"a stranger's key: event {event}, not FAILED_AUTH"
            assert not answered, "a client with a stranger's key got an answer"
            ctx.term()

            series = 'mesh_transport_frames_dropped_total{reason="unauthenticated"}'

            def refused():
                for line in get(admin, "/metrics").splitlines():
                    if line.startswith(series + " ") and float(line.split()[-1]) >= 1:
                        return True
                return False

            wait_until("the refused handshake in /metrics", refused)
            print("raw ZeroMQ clients without a member key: refused")
            return 0
        except AssertionError as e:
            log.flush()
            with open(os.path.join(tmp, "node.log")) as f:
                tail = f.read()[-4000:]
            print(f"FAILED: {e}\n--- the node's log:\n{tail}")
            return 1
        finally:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(timeout=20)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
            log.close()


if __name__ == "__main__":
    sys.exit(main())
