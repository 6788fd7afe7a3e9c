#!/usr/bin/env python3
"""Server-Sent Events on chirp's bench_app (helper of scripts/bench-static.sh).

Usage: bench-sse.py PORT SERVER_PID [EVENTS] [IDLE_CONNS]

1. Events per second on one connection: GET /sse/flood?n=EVENTS [200000] and read the
   stream to its end (the events as fast as the client takes them), timed.
2. Memory per idle event-stream connection: the server's VmRSS (/proc/PID/status) before and
   after IDLE_CONNS [2000] connections each GET /sse/idle and read its head; the streams then
   stay open and silent. Prints the difference per connection.
Loopback only; Python 3 standard library.
"""

import socket
import sys
import time


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmRSS")


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    events = int(sys.argv[3]) if len(sys.argv) > 3 else 200_000
    idle = int(sys.argv[4]) if len(sys.argv) > 4 else 2000

    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /sse/flood?n={events} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    end = f"id: {events}\ndata: {events}\n\n".encode()
    buf = bytearray()
    start = time.perf_counter()
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise SystemExit("the stream ended early")
        buf += chunk
        if buf.endswith(b"0\r\n\r\n") and end in buf[-4096:]:
            break
        if len(buf) > 1 << 22:
            del buf[: len(buf) - 8192]
    took = time.perf_counter() - start
    s.close()
    print(f"sse events_per_second {events / took:.0f} ({events} events in {took:.3f} s, one connection)")

    time.sleep(0.5)
    before = rss(pid)
    conns = []
    for _ in range(idle):
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"GET /sse/idle HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        conns.append(c)
    for c in conns:
        head = b""
        while b"\r\n\r\n" not in head:
            part = c.recv(4096)
            if not part:
                raise SystemExit("an idle stream closed")
            head += part
    time.sleep(1.0)
    after = rss(pid)
    print(f"sse bytes_per_idle_connection {(after - before) / idle:.0f} ({idle} connections, VmRSS {before} -> {after})")
    for c in conns:
        c.close()


if __name__ == "__main__":
    main()
