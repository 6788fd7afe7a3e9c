"""The chat part of scripts/scale-out.sh: two users of examples/chat, each socket pinned to
one instance behind nginx (alice's through /a/ to instance a, bob's through /b/ to instance b;
each logged in through the other instance), and an SSE reader on b. Prints one `label<TAB>what was observed` line per check; the script compares
them with what it expects. Every wait has a timeout: a message that never comes is printed as
`(timeout)`, never a hang.

    python scale-out-chat.py <nginx port>

Needs `websockets` (the test venv has it: scripts/test.sh).
"""

import asyncio
import http.client
import json
import re
import sys
import urllib.parse

from websockets.asyncio.client import connect

PORT = int(sys.argv[1])
ORIGIN = f"http://127.0.0.1:{PORT}"
WAIT = 5


def said(user, text):
    return json.dumps({"user": user, "text": text}, separators=(",", ":"), ensure_ascii=False)


def request(method, path, cookie=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=WAIT)
    headers = {"Cookie": cookie} if cookie else {}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    res = conn.getresponse()
    text = res.read().decode()
    set_cookie = res.getheader("Set-Cookie")
    conn.close()
    return res.status, res.getheader("Location"), set_cookie.split(";")[0] if set_cookie else cookie, text


def log_in(prefix, name):
    """Logs in through the form at <prefix>/login; the session cookie."""
    status, _, cookie, html = request("GET", f"{prefix}/login")
    token = re.search(r'name="_csrf_token" value="([^"]*)"', html)
    if status != 200 or not token:
        raise RuntimeError(f"GET {prefix}/login: {status} {html[:200]}")
    body = urllib.parse.urlencode({"name": name, "_csrf_token": token.group(1)})
    status, location, cookie, html = request("POST", f"{prefix}/login", cookie, body)
    if status != 303 or location != "/":
        raise RuntimeError(f"POST {prefix}/login: {status} {location} {html[:200]}")
    return cookie


async def recv(ws):
    try:
        return await asyncio.wait_for(ws.recv(), WAIT)
    except (asyncio.TimeoutError, TimeoutError):
        return "(timeout)"


async def open_events(prefix):
    """GET <prefix>/events as HTTP/1.0 (nginx then sends the stream as it is, unchunked);
    returns once the head has arrived (the hub subscription is made before it is sent)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", PORT), WAIT)
    writer.write(f"GET {prefix}/events HTTP/1.0\r\nHost: 127.0.0.1:{PORT}\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    return reader, writer, head.decode().split("\r\n")[0]


async def event_data(reader, wanted):
    """Reads `message` events until one with data `wanted` (or a timeout); what it found."""
    buf = ""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(4096), WAIT)
            if not chunk:
                return "(stream ended)"
            buf += chunk.decode()
            if f"event: message\ndata: {wanted}\n\n" in buf:
                return wanted
    except (asyncio.TimeoutError, TimeoutError):
        return "(timeout)"


def out(label, value):
    print(f"{label}\t{value}", flush=True)


async def main():
    # Each logs in on the other instance than the one their socket is on: a session made by
    # one instance is good on the other (the shared CHIRP_SECRET_KEY).
    alice_cookie = log_in("/b", "alice")
    bob_cookie = log_in("/a", "bob")
    out("login", "ok")
    events_b, events_writer, events_status = await open_events("/b")
    out("events_b_status", events_status)

    def chat(prefix, cookie):
        return connect(
            f"ws://127.0.0.1:{PORT}{prefix}/ws/chat",
            origin=ORIGIN,
            additional_headers={"Cookie": cookie},
            open_timeout=WAIT,
            close_timeout=WAIT,
        )

    async with chat("/a", alice_cookie) as alice, chat("/b", bob_cookie) as bob:
        # Alice's message through a: she hears it, bob on b hears it.
        await alice.send("from a")
        out("a_hears_own", await recv(alice))
        out("b_hears_a", await recv(bob))
        # Bob's message through b: both hear it.
        await bob.send("from b")
        out("b_hears_own", await recv(bob))
        out("a_hears_b", await recv(alice))
        # The SSE reader on b got alice's message (published through a).
        out("events_b_hears_a", await event_data(events_b, said("alice", "from a")))
    events_writer.close()

    # A foreign Origin is still refused through nginx (Host passed on as the client sent it).
    try:
        async with connect(
            f"ws://127.0.0.1:{PORT}/b/ws/chat",
            origin="http://evil.example",
            additional_headers={"Cookie": bob_cookie},
            open_timeout=WAIT,
        ):
            out("foreign_origin", "101")
    except Exception as e:  # websockets.exceptions.InvalidStatus
        status = getattr(getattr(e, "response", None), "status_code", None)
        out("foreign_origin", status if status is not None else repr(e))


try:
    asyncio.run(asyncio.wait_for(main(), 30))
except Exception as e:
    out("error", repr(e))
