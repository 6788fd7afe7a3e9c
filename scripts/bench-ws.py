#!/usr/bin/env python3
"""WebSocket load client for scripts/bench-ws.sh (loopback only, standard library only).

Raw sockets and hand-made frames rather than a WebSocket library: the client's cost per message
is then a few microseconds of Python (a precomputed masked frame sent, the echo's header
parsed), so it stays out of the way of the server being measured, and nothing is installed.

  rtt   ONE connection: WARM round trips, then the --zero command (callgrind_control --zero),
        N round trips of one SIZE-byte text message each (the echo read completely before
        the next is sent, and checked), then the --dump command. Prints round trips/s.
  flood CONNS connections, DEPTH messages in flight on each (a new one sent as each echo
        comes back), for SECONDS. DEPTH > 1 lets one Python process keep a server busy: with
        one in flight it costs the client more per message than the servers spend. Prints
        messages/s and, with --pid, the server's CPU time per message and its CPU% over the
        run (utime+stime from /proc/PID/stat).
  idle  COUNT sockets opened (handshake done, then one echoed message each so that lazily made
        state, e.g. zlib's, exists), left idle; prints the server's VmRSS before and after and
        the difference per socket (/proc/PID/status), then closes them.

--deflate offers permessage-deflate; --no-context offers it with server_no_context_takeover and
client_no_context_takeover. When the server agrees, the client's messages are compressed too
(RSV1), as a browser's would be; when it declines (the ext peers), plain frames are sent and the
line says `deflate=declined`.
"""

import argparse
import base64
import os
import select
import socket
import sys
import time
import zlib

HOST = "127.0.0.1"  # loopback only, by design


def offer(args):
    if args.no_context:
        return "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    if args.deflate:
        return "permessage-deflate; client_max_window_bits"
    return None


class Conn:
    """One client WebSocket on a blocking-or-not socket."""

    def __init__(self, port, path, ext):
        self.sock = socket.create_connection((HOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        )
        if ext:
            req += f"Sec-WebSocket-Extensions: {ext}\r\n"
        self.sock.sendall((req + "\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("connection closed during the handshake")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise RuntimeError(f"no 101: {lines[0]}")
        agreed = [l.split(":", 1)[1].strip() for l in lines[1:]
                  if l.lower().startswith("sec-websocket-extensions:")]
        self.deflate = bool(agreed) and agreed[0].startswith("permessage-deflate")
        self.agreed = agreed[0] if agreed else "declined"
        self.no_context = "client_no_context_takeover" in self.agreed
        self.comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.decomp = zlib.decompressobj(-15)

    def frame(self, payload):
        """A masked text frame (compressed when deflate was agreed)."""
        b0 = 0x81
        if self.deflate:
            if self.no_context:
                self.comp = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload = self.comp.compress(payload) + self.comp.flush(zlib.Z_SYNC_FLUSH)
            payload = payload[:-4]
            b0 |= 0x40
        n = len(payload)
        if n < 126:
            head = bytes([b0, 0x80 | n])
        elif n < 65536:
            head = bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([b0, 0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")
                  ).to_bytes(n, "big") if n else b""
        return head + mask + masked

    def take_frame(self):
        """A whole server frame from self.buf: (rsv1, opcode, payload), or None."""
        b = self.buf
        if len(b) < 2:
            return None
        n = b[1] & 0x7F
        at = 2
        if n == 126:
            if len(b) < 4:
                return None
            n, at = int.from_bytes(b[2:4], "big"), 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, at = int.from_bytes(b[2:10], "big"), 10
        if len(b) < at + n:
            return None
        payload = b[at:at + n]
        self.buf = b[at + n:]
        return (b[0] & 0x40, b[0] & 0x0F, payload)

    def message(self, rsv1, payload):
        if rsv1:
            if self.no_context:
                self.decomp = zlib.decompressobj(-15)
            return self.decomp.decompress(payload + b"\x00\x00\xff\xff")
        return payload

    def recv_message(self):
        while True:
            f = self.take_frame()
            if f is not None:
                rsv1, opcode, payload = f
                if opcode != 0x1:
                    raise RuntimeError(f"unexpected frame opcode {opcode}")
                return self.message(rsv1, payload)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed")
            self.buf += chunk

    def close(self):
        try:
            self.sock.sendall(bytes([0x88, 0x82]) + b"\0\0\0\0" + (1000).to_bytes(2, "big"))
        except OSError:
            pass
        self.sock.close()


def payload_of(size):
    return (b"chirp websocket benchmark message " * (size // 34 + 1))[:size]


def run_cmd(cmd):
    if cmd:
        import subprocess
        subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)


def rtt(args):
    c = Conn(args.port, args.path, offer(args))
    msg = payload_of(args.size)
    # Without deflate the same frame every time (the mask is not checked for freshness by
    # any of the servers, and this keeps the client's own work out of the timing).
    fixed = None if c.deflate else c.frame(msg)

    def trip():
        c.sock.sendall(fixed or c.frame(msg))
        got = c.recv_message()
        if got != msg:
            raise RuntimeError(f"echo differs: {got[:40]!r}")

    for _ in range(args.warm):
        trip()
    run_cmd(args.zero)
    t0 = time.perf_counter()
    for _ in range(args.n):
        trip()
    dt = time.perf_counter() - t0
    run_cmd(args.dump)
    c.close()
    print(f"rtt n={args.n} size={args.size} deflate={c.agreed!r} seconds={dt:.3f} "
          f"round_trips_per_sec={args.n / dt:.0f}")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def flood(args):
    conns = [Conn(args.port, args.path, None) for _ in range(args.conns)]
    msg = payload_of(args.size)
    frames = {c.sock.fileno(): c.frame(msg) for c in conns}
    # The echo of a small text message: 2-byte header + payload (no mask from a server).
    echo_len = 2 + args.size if args.size < 126 else 4 + args.size
    by_fd = {c.sock.fileno(): c for c in conns}
    pending = {fd: 0 for fd in by_fd}
    ep = select.epoll()
    for fd, c in by_fd.items():
        c.sock.setblocking(False)
        ep.register(fd, select.EPOLLIN)
        if c.buf:
            raise RuntimeError("unexpected bytes after the handshake")
    count = 0
    clk = os.sysconf("SC_CLK_TCK")
    for fd, c in by_fd.items():
        c.sock.send(frames[fd] * args.depth)
    t_end = time.perf_counter() + args.seconds
    cpu0 = cpu_ticks(args.pid) if args.pid else 0
    t0 = time.perf_counter()
    measuring = True
    while measuring:
        for fd, _ in ep.poll(0.5):
            data = by_fd[fd].sock.recv(65536)
            if not data:
                raise RuntimeError("a connection closed")
            got = pending[fd] + len(data)
            done, pending[fd] = divmod(got, echo_len)
            count += done
            if done:
                by_fd[fd].sock.send(frames[fd] * done)
        if time.perf_counter() >= t_end:
            measuring = False
    dt = time.perf_counter() - t0
    cpu = (cpu_ticks(args.pid) - cpu0) / clk if args.pid else 0
    for c in conns:
        c.sock.setblocking(True)
        c.close()
    line = f"flood conns={args.conns} depth={args.depth} size={args.size} seconds={dt:.2f} msgs_per_sec={count / dt:.0f}"
    if args.pid:
        line += f" cpu_us_per_msg={cpu * 1e6 / max(count, 1):.2f} cpu_pct={100 * cpu / dt:.0f}"
    print(line)


def vmrss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def idle(args):
    # A first batch, closed again, so that the runtime's one-off growth (slab of the
    # connection table, the allocator's arenas) is not booked to the measured sockets.
    for c in [Conn(args.port, args.path, offer(args)) for _ in range(min(64, args.count))]:
        c.close()
    time.sleep(1)
    before = vmrss_kib(args.pid)
    conns = []
    msg = payload_of(args.size)
    for _ in range(args.count):
        c = Conn(args.port, args.path, offer(args))
        c.sock.sendall(c.frame(msg))
        if c.recv_message() != msg:
            raise RuntimeError("echo differs")
        conns.append(c)
    time.sleep(args.settle)
    after = vmrss_kib(args.pid)
    agreed = conns[0].agreed
    for c in conns:
        c.close()
    print(f"idle sockets={args.count} deflate={agreed!r} rss_before_kib={before} "
          f"rss_after_kib={after} kib_per_socket={(after - before) / args.count:.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["rtt", "flood", "idle"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/ws/echo")
    p.add_argument("--size", type=int, default=32, help="message bytes [32]")
    p.add_argument("--n", type=int, default=2000, help="rtt: measured round trips [2000]")
    p.add_argument("--warm", type=int, default=200, help="rtt: warm-up round trips [200]")
    p.add_argument("--zero", help="rtt: shell command run before the measured round trips")
    p.add_argument("--dump", help="rtt: shell command run after them")
    p.add_argument("--conns", type=int, default=64, help="flood: connections [64]")
    p.add_argument("--depth", type=int, default=1, help="flood: messages in flight per connection [1]")
    p.add_argument("--seconds", type=float, default=2.0, help="flood: seconds [2]")
    p.add_argument("--count", type=int, default=1000, help="idle: sockets [1000]")
    p.add_argument("--settle", type=float, default=1.0, help="idle: seconds before reading RSS [1]")
    p.add_argument("--pid", type=int, help="the server's PID (flood: CPU; idle: RSS)")
    p.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    p.add_argument("--no-context", action="store_true",
                   help="offer it with server_ and client_no_context_takeover")
    args = p.parse_args()
    if args.mode == "idle" and not args.pid:
        p.error("idle needs --pid")
    {"rtt": rtt, "flood": flood, "idle": idle}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
