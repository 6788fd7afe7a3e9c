#!/usr/bin/env python3
"""Turns the outputs of scripts/bench-peers.sh into docs/benchmarks.md and docs/benchmarks.svg.

usage: report.py OUT_DIR DOCS_DIR   (standard library only)
"""
import os
import re
import sys
from datetime import date

SERVERS = ["chirp", "axum", "actix", "raw"]
COLORS = {"chirp": "#e4572e", "axum": "#4c72b0", "actix": "#55a868", "raw": "#8c8c8c"}


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def instructions(text):
    """server scenario value -> {(server, scenario): float}"""
    cells = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#") and parts[2] != "n/a":
            cells[(parts[0], parts[1])] = float(parts[2])
    return cells


def verdicts(text):
    """'# verdict chirp/axum plaintext 1.23 [1.1..1.4]' -> {(other, scenario): (median, lo, hi)}"""
    out = {}
    for m in re.finditer(r"# verdict \w+/(\S+) (\S+) ([\d.]+) \[([\d.]+)\.\.([\d.]+)\]", text):
        out[(m.group(1), m.group(2))] = tuple(float(m.group(i)) for i in (3, 4, 5))
    return out


def medians(text):
    """'server scenario rps_median ...' rows of alternate.sh -> {(server, scenario): rps}"""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 8 and not line.startswith("#") and parts[2] != "n/a":
            out[(parts[0], parts[1])] = float(parts[2])
    return out


def idle(text):
    """'server idle held - bytes' lines of peers.sh -> {server: (held, bytes_per_conn)}"""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[1] == "idle" and parts[4] != "n/a":
            out[parts[0]] = (int(parts[2]), float(parts[4]))
    return out


def peak_rss(text):
    out = {}
    for m in re.finditer(r"# (\S+) peak-rss VmHWM=(\d+)kB", text):
        out[m.group(1)] = int(m.group(2)) * 1024
    return out


def svg_bars(title, groups, series, values, fmt, width=720, height=300, ref=None):
    """Grouped bar chart: groups on x, one bar per series; `ref` draws a dashed line there."""
    left, top, bottom = 60, 40, 50
    plot_w, plot_h = width - left - 20, height - top - bottom
    vmax = max([v for v in values.values() if v] or [1]) * 1.15
    gw = plot_w / max(len(groups), 1)
    bw = gw * 0.8 / max(len(series), 1)
    out = [f'<g><text x="{width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{title}</text>']
    for gi, g in enumerate(groups):
        x0 = left + gi * gw + gw * 0.1
        out.append(f'<text x="{left + gi * gw + gw / 2:.1f}" y="{top + plot_h + 18}" text-anchor="middle" font-size="12">{g}</text>')
        for si, s in enumerate(series):
            v = values.get((s, g))
            if v is None:
                continue
            h = plot_h * v / vmax
            x = x0 + si * bw
            y = top + plot_h - h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" fill="{COLORS.get(s, "#999")}"/>')
            out.append(f'<text x="{x + bw / 2 - 1:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="9">{fmt(v)}</text>')
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>')
    if ref is not None:
        y = top + plot_h - plot_h * ref / vmax
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#333" stroke-dasharray="4 3"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{fmt(ref)}</text>')
    for si, s in enumerate(series):
        out.append(f'<rect x="{left + si * 90}" y="{height - 16}" width="10" height="10" fill="{COLORS.get(s, "#999")}"/>'
                   f'<text x="{left + si * 90 + 14}" y="{height - 7}" font-size="11">{s}</text>')
    out.append("</g>")
    return "\n".join(out), height


def static_section(static_dir):
    """The static-file and SSE figures of scripts/bench-static.sh, when it ran."""
    if not os.path.isdir(static_dir):
        return []
    instr = instructions(read(os.path.join(static_dir, "instructions.txt")))
    sys_calls = instructions(read(os.path.join(static_dir, "syscalls.txt")))
    alt = read(os.path.join(static_dir, "alternate.txt"))
    ratios, rps = verdicts(alt), medians(alt)
    peers = [("chirp", "chirp", "chirp"), ("axumr", "axum", "axum + tower-http ServeDir"),
             ("actixr", "actix", "actix-web + actix-files")]
    md = ["## Static files (scripts/bench-static.sh)", "",
          "`GET /static/hello.txt` (13 bytes) and `GET /static/64k.bin` (64 KiB) from `STATIC_DIR`, one keep-alive "
          "connection, one request in flight: chirp's `StaticFilesMiddleware` (defaults, mounted as a route) beside the ext peers "
          "(`../shared/peers`: tower-http `ServeDir`, actix-files `Files`, their defaults). Instructions: callgrind, "
          "user space, the server process. Syscalls: `strace -f -c` over 2,000 requests (two runs, difference), one "
          "worker on one core. Throughput: `alternate.sh`, servers pinned to core 0, wrk -c64 on core 1.", "",
          "| server | instructions, 13 B | instructions, 64 KiB | syscalls, 13 B | syscalls, 64 KiB | req/s, 13 B | req/s, 64 KiB |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key, sys_key, label in peers:
        cells = [instr.get((key, "static")), instr.get((key, "static64k"))]
        calls = [sys_calls.get((sys_key, "static")), sys_calls.get((sys_key, "static64k"))]
        speed = [rps.get((key, "static")), rps.get((key, "static64k"))]
        md.append(f"| {label} | " + " | ".join(f"{c:,.0f}" if c else "n/a" for c in cells) + " | "
                  + " | ".join(f"{c:.1f}" if c else "n/a" for c in calls) + " | "
                  + " | ".join(f"{c:,.0f}" if c else "n/a" for c in speed) + " |")
    if ratios:
        md += ["", "Throughput, chirp ÷ peer within each round (median [min..max]): " + "; ".join(
            f"{other} {sc} {r[0]:.2f} [{r[1]:.2f}..{r[2]:.2f}]" for (other, sc), r in sorted(ratios.items()))]
    detail = read(os.path.join(static_dir, "syscalls-detail.txt")).strip()
    if detail:
        md += ["", "Syscalls per request, by name:", "", "```", detail, "```"]
    sse = read(os.path.join(static_dir, "sse.txt")).strip()
    if sse:
        md += ["", "## Server-Sent Events (scripts/bench-sse.py)", "",
               "chirp only (the peers have no SSE route): events per second on one connection (`/sse/flood`, events "
               "as fast as a Python client reads them, so the client may be the limit), and the server's resident "
               "memory per idle event stream (`/sse/idle`, 2,000 of them).", "", "```", sse, "```"]
    return md + [""]


def redis_section(redis_dir):
    """The Redis-session figures of scripts/bench-redis.sh, when it ran: (markdown, chart values)."""
    if not os.path.isdir(redis_dir):
        return [], {}
    instr = instructions(read(os.path.join(redis_dir, "instructions.txt")))
    alt = read(os.path.join(redis_dir, "alternate.txt"))
    ratios, rps = verdicts(alt), medians(alt)
    commands = {}
    for line in read(os.path.join(redis_dir, "commands.txt")).splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and not line.startswith("#"):
            commands[(parts[0], parts[1])] = (float(parts[2]), parts[3])
    peers = [("chirp", "chirp", "chirp `RedisStore`"),
             ("axumr", "axum", "axum + tower-sessions `RedisStore` (fred)"),
             ("actixr", "actix", "actix-web + actix-session `RedisSessionStore`")]
    md = ["## Redis sessions (scripts/bench-redis.sh)", "",
          "`GET /dashboard` with the session in Redis: chirp's `examples/bench_app.rs` built with `--features redis` "
          "and `REDIS_URL` set, beside the ext peers (`../shared/peers`), all on one local redis-server (no "
          "persistence). Instructions: callgrind, user space, the server process alone (Redis's work is not "
          "counted). Throughput: `alternate.sh`, servers pinned to core 0, wrk -c64 on core 1, Redis on either. "
          "Redis commands: `INFO commandstats` over requests that all send the cookie of a first one; "
          "`/dashboard/read` (chirp only) reads the session and leaves it unchanged.", "",
          "| server | instructions, /dashboard | req/s, /dashboard | Redis commands, /dashboard | Redis commands, read-only |",
          "| --- | ---: | ---: | ---: | ---: |"]
    for key, short, label in peers:
        i, r = instr.get((key, "dashboard")), rps.get((key, "dashboard"))
        c = commands.get((short, "/dashboard"))
        ro = commands.get((short, "/dashboard/read"))
        md.append(f"| {label} | " + (f"{i:,.0f}" if i else "n/a") + " | " + (f"{r:,.0f}" if r else "n/a") + " | "
                  + (f"{c[0]:.0f} ({c[1]})" if c else "n/a") + " | " + (f"{ro[0]:.0f} ({ro[1]})" if ro else "n/a (no such route)") + " |")
    if ratios:
        md += ["", "Throughput, chirp ÷ peer within each round (median [min..max]): " + "; ".join(
            f"{other} {r[0]:.2f} [{r[1]:.2f}..{r[2]:.2f}]" for (other, sc), r in sorted(ratios.items()))]
    chirp = instr.get(("chirp", "dashboard"))
    if chirp:
        md += ["", "Instructions, chirp ÷ peer: " + "; ".join(
            f"{short} {chirp / instr[(key, 'dashboard')]:.2f}×" for key, short, _ in peers[1:] if (key, "dashboard") in instr)]
    chart = {(short, "dashboard (Redis)"): instr[(key, "dashboard")] for key, short, _ in peers if (key, "dashboard") in instr}
    return md + [""], chart


def main():
    out_dir, docs = sys.argv[1], sys.argv[2]
    instr = instructions(read(os.path.join(out_dir, "instructions.txt")))
    alt_text = read(os.path.join(out_dir, "alternate.txt"))
    ratios, rps = verdicts(alt_text), medians(alt_text)
    peers_text = read(os.path.join(out_dir, "peers.txt"))
    idle_mem, rss = idle(peers_text), peak_rss(peers_text)
    allocs = read(os.path.join(out_dir, "allocations.txt"))

    md = ["# Benchmarks", "",
          f"Made by `make bench-peers` (scripts/bench-peers.sh) on {date.today()}, on this project's 2-core machine, "
          "with the shared scripts in `../shared/bench` and the peers in `../shared/peers` (axum 0.8 + tower-sessions "
          "cookie store, actix-web 4 + actix-session signed cookie, and `raw`, a bare tokio + httparse loop with canned "
          "responses: the floor). chirp runs `examples/bench_app.rs`, the same routes and bodies.", "",
          "![chirp beside its peers](benchmarks.svg)", ""]

    md += ["## Instructions per request (callgrind, deterministic)", "",
           "User-space instructions per keep-alive request, one request in flight (`instructions.sh`); "
           "repeatable to about ±0.5 %. Under valgrind the CPU's SHA extensions are hidden, so every "
           "server pays ~3.4k instructions per SHA-256 block on /dashboard.", "",
           "| server | / | /json | /dashboard |", "| --- | ---: | ---: | ---: |"]
    for s in SERVERS:
        cells = [instr.get((s, sc)) for sc in ("plaintext", "json", "dashboard")]
        md.append(f"| {s} | " + " | ".join(f"{c:,.0f}" if c else "n/a" for c in cells) + " |")
    if instr.get(("chirp", "plaintext")) and instr.get(("raw", "plaintext")):
        md += ["", "chirp / raw: " + ", ".join(
            f"{sc} {instr[('chirp', sc)] / instr[('raw', sc)]:.2f}×" for sc in ("plaintext", "json")
            if ("raw", sc) in instr and ("chirp", sc) in instr)
            + "; chirp / actix on /dashboard: "
            + (f"{instr[('chirp', 'dashboard')] / instr[('actix', 'dashboard')]:.2f}×" if ("actix", "dashboard") in instr else "n/a")]

    md += ["", "## Throughput, interleaved (alternate.sh)", "",
           "All servers run at once, each pinned to core 0 (one worker), wrk on core 1; 2-second wrk slices taken in "
           "turn, round after round, and the chirp/other requests-per-second ratio taken within each round. "
           "Median [min..max] over the rounds; >1 means chirp is faster. Differences under ~20 % are within noise.", "",
           "| chirp / … | / | /json | /dashboard | pipelined / (16 per write) |", "| --- | ---: | ---: | ---: | ---: |"]
    for other in ("axum", "actix", "raw"):
        row = []
        for sc in ("plaintext", "json", "dashboard", "pipeline"):
            r = ratios.get((other, sc))
            row.append(f"{r[0]:.2f} [{r[1]:.2f}..{r[2]:.2f}]" if r else "n/a")
        md.append(f"| {other} | " + " | ".join(row) + " |")
    md += ["", "On / and /json every server, the raw floor included, lands within a few percent of the "
           "others: with loopback and one wrk thread, the kernel's share of a request (most of the ~5.5 µs of "
           "server CPU per request, `cpu-us/req` in alternate.txt) dominates, so user-space savings show in the "
           "instruction counts and on /dashboard, not here."]
    if rps:
        md += ["", "Median requests per second (absolute figures drift with the machine; read the ratios):", "",
               "| server | / | /json | /dashboard | pipelined / |", "| --- | ---: | ---: | ---: | ---: |"]
        for s in SERVERS:
            md.append(f"| {s} | " + " | ".join(
                f"{rps[(s, sc)]:,.0f}" if (s, sc) in rps else "n/a" for sc in ("plaintext", "json", "dashboard", "pipeline")) + " |")

    md += ["", "## Memory", "", "| server | bytes per idle keep-alive connection | connections held | peak RSS under load |",
           "| --- | ---: | ---: | ---: |"]
    for s in SERVERS:
        held, bpc = idle_mem.get(s, (None, None))
        md.append(f"| {s} | {bpc:,.0f} | {held:,} | " if bpc is not None else f"| {s} | n/a | n/a | ")
        md[-1] += f"{rss[s] / 1024 / 1024:.1f} MiB |" if s in rss else "n/a |"

    md += ["", "## Heap allocations per request", "", "```", allocs.strip() or "(not measured)", "```", ""]
    md += static_section(os.path.join(out_dir, "static"))
    redis_md, redis_chart = redis_section(os.path.join(out_dir, "redis"))
    md += redis_md
    os.makedirs(docs, exist_ok=True)
    with open(os.path.join(docs, "benchmarks.md"), "w") as f:
        f.write("\n".join(md) + "\n")

    charts, y = [], 0
    scen = ["plaintext", "json", "dashboard"]
    body, h = svg_bars("Instructions per request (lower is better)", scen, SERVERS, instr, lambda v: f"{v / 1000:.1f}k")
    charts.append(f'<g transform="translate(0,{y})">{body}</g>')
    y += h
    ratio_vals = {(o, sc): r[0] for (o, sc), r in ratios.items()}
    body, h = svg_bars("Throughput: chirp ÷ peer, interleaved median (higher is better for chirp)",
                       scen + ["pipeline"], ["axum", "actix", "raw"], ratio_vals, lambda v: f"{v:.2f}×", ref=1.0)
    charts.append(f'<g transform="translate(0,{y})">{body}</g>')
    y += h
    if redis_chart:
        body, h = svg_bars("Instructions per request, sessions in Redis (lower is better)", ["dashboard (Redis)"],
                           ["chirp", "axum", "actix"], redis_chart, lambda v: f"{v / 1000:.1f}k")
        charts.append(f'<g transform="translate(0,{y})">{body}</g>')
        y += h
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="720" height="{y}" font-family="sans-serif">'
           f'<rect width="100%" height="100%" fill="white"/>' + "\n".join(charts) + "</svg>\n")
    with open(os.path.join(docs, "benchmarks.svg"), "w") as f:
        f.write(svg)


if __name__ == "__main__":
    main()
