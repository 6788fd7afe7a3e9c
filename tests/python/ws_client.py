"""A WebSocket client on Python's `websockets` (another implementation than chirp's), for
tests/ws_conformance.rs: permessage-deflate (RFC 7692) against chirp's echo socket, modelled
on the Autobahn testsuite's families 12 and 13.

Reads one JSON object from stdin:

    {"url": "ws://127.0.0.1:PORT/ws/echo",
     "cases": [{"name": "...",
                "offers": [{"server_no_context_takeover": false,
                            "client_no_context_takeover": false,
                            "server_max_window_bits": null | 8..15,
                            "client_max_window_bits": null | true | 9..15}, ...],
                "messages": [{"type": "text" | "binary", "size": N,
                              "kind": "compressible" | "random" | "far",
                              "fragments": 0 | K}, ...],
                "close": 1000}]}

and writes one JSON array, a result per case, in order:

    {"name": "...", "extensions": <the 101's Sec-WebSocket-Extensions or null>,
     "echoed": [true | false per message: came back equal, same type],
     "compressed": [true | false per message: the echo's first frame had RSV1],
     "close_code": <the code of the server's Close, or null>, "error": null | "..."}

A case's `messages` are sent one at a time, each echo awaited before the next. A message
with `"expect_close": C` is not expected back: the server must close with C instead (the
case ends there). Every await has a timeout: a hang is an error, never a stuck test.
"""

import asyncio
import json
import random
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

TIMEOUT = 10.0

WORDS = (
    '{"user": "chirp", "text": "the quick brown fox jumps over the lazy dog", "n": %d}\n'
)


def payload(message, index):
    """The bytes of a message: deterministic per (kind, size, index)."""
    size = message["size"]
    kind = message["kind"]
    rng = random.Random(f"{kind}-{size}-{index}")
    if kind == "compressible":
        out = bytearray()
        n = 0
        while len(out) < size:
            out += (WORDS % n).encode()
            n += 1
        data = bytes(out[:size])
    elif kind == "random":
        if message["type"] == "text":
            # Printable ASCII at random: compresses little.
            data = bytes(rng.randrange(0x20, 0x7F) for _ in range(size))
        else:
            data = rng.randbytes(size)
    elif kind == "far":
        # A random block of 3000 bytes, repeated: its matches are 3000 bytes back, farther
        # than a window of 9 to 11 bits reaches. A server that compresses with a larger
        # window than it agreed makes references this client cannot resolve.
        block = bytes(rng.randrange(0x20, 0x7F) for _ in range(3000))
        data = (block * (size // len(block) + 1))[:size]
    elif kind == "repeat":
        data = b"a" * size
    else:
        raise ValueError(kind)
    return data


def factory(offer):
    return ClientPerMessageDeflateFactory(
        server_no_context_takeover=offer.get("server_no_context_takeover", False),
        client_no_context_takeover=offer.get("client_no_context_takeover", False),
        server_max_window_bits=offer.get("server_max_window_bits"),
        client_max_window_bits=offer.get("client_max_window_bits"),
    )


async def run_case(url, case):
    result = {
        "name": case["name"],
        "extensions": None,
        "echoed": [],
        "compressed": [],
        "close_code": None,
        "error": None,
    }
    frames = []  # (rsv1, fin) of every data frame received, before decompression
    try:
        ws = await asyncio.wait_for(
            connect(
                url,
                extensions=[factory(o) for o in case["offers"]],
                compression=None,
                max_size=None,
                ping_interval=None,
                open_timeout=TIMEOUT,
                close_timeout=TIMEOUT,
            ),
            TIMEOUT,
        )
    except Exception as e:  # the handshake failed: say why
        result["error"] = f"connect: {type(e).__name__}: {e}"
        return result
    result["extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
    for ext in ws.protocol.extensions:
        decode = ext.decode

        def recording(frame, *, max_size=None, decode=decode):
            if frame.opcode.value in (0, 1, 2):
                frames.append(frame.rsv1)
            return decode(frame, max_size=max_size)

        ext.decode = recording
    try:
        for index, message in enumerate(case["messages"]):
            data = payload(message, index)
            text = message["type"] == "text"
            sent = data.decode() if text else data
            frames.clear()
            k = message.get("fragments", 0)
            if k:
                step = max(1, len(sent) // k)
                await asyncio.wait_for(
                    ws.send([sent[i : i + step] for i in range(0, len(sent), step)]),
                    TIMEOUT,
                )
            else:
                await asyncio.wait_for(ws.send(sent), TIMEOUT)
            if "expect_close" in message:
                try:
                    got = await asyncio.wait_for(ws.recv(), TIMEOUT)
                    result["error"] = f"message {index}: echoed ({len(got)}), not closed"
                except ConnectionClosed:
                    pass
                break
            got = await asyncio.wait_for(ws.recv(), TIMEOUT)
            result["echoed"].append(got == sent)
            result["compressed"].append(bool(frames) and frames[0])
        else:
            await asyncio.wait_for(ws.close(case.get("close", 1000)), TIMEOUT)
    except ConnectionClosed:
        pass
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
    try:
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    except Exception as e:
        result["error"] = result["error"] or f"wait_closed: {type(e).__name__}: {e}"
    if ws.protocol.close_rcvd is not None:
        result["close_code"] = ws.protocol.close_rcvd.code
    return result


async def main():
    spec = json.load(sys.stdin)
    results = [await run_case(spec["url"], case) for case in spec["cases"]]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
