"""Bad networks: `python bench/network.py [--json FILE]` (issue 17, item 9; needs root for ip netns).

The server on one test host, headless Chromium on another (network namespaces joined by a veth
pair, engine/harness/netlab.py), one session through a plan of spoiled links: 2 % random loss
(nftables), a clean spell, a 3 s outage, a 600 kbit/s cap (tc tbf), and a clean link again.
Reported per phase (netlab.spoiled_link_report): under loss the decoded FPS, NACKs, audio concealed
and the A/V offset; after the outage the seconds until the picture is back; under the cap the
worst second's FPS and the bitrate target, and how far it climbs back after. Budgets (issue 17):
>= 29 FPS and |A/V| <= 40 ms under 2 % loss, back within 2 s of the link, the video moving (>= 25
FPS) under the cap with the bitrate below it, then rising. This kernel has no netem: no delay or
jitter phase.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine_info, write_json

from dyadic.engine.harness import netlab
from dyadic.engine.harness.serve_process import ServeProcess

PLAN = [("loss", 15.0), ("clean", 3.0), ("outage", 3.0), ("clean", 6.0), ("cap", 15.0), ("clean", 20.0)]
LOSS_PERCENT, CAP_KBIT = 2, 600


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the numbers and machine info here")
    args = ap.parse_args(argv)
    reason = netlab.unavailable()
    if reason is not None:
        print(f"bench/network.py: skipped: {reason}", file=sys.stderr)
        write_json(args.json, {"benchmark": "network", "skipped": reason, "results": []})
        return 0
    with netlab.TwoHosts() as net, ServeProcess(host=net.server_ip, wrap=net.on("server")) as server:
        proc = netlab.start_probe(net, server.ws, sum(d for _, d in PLAN) + 0.5, "--browser")
        phases = netlab.follow_plan(net, PLAN, LOSS_PERCENT, CAP_KBIT)
        samples = netlab.probe_output(proc)
    report = netlab.spoiled_link_report(samples, phases)
    print(json.dumps(report, indent=1))
    print(netlab.timeline_table(samples, phases))
    loss, outage, cap, after = report["loss"], report["outage"], report["cap"], report["after_cap"]
    back = outage["recovered_after_s"]
    rows = [
        ("FPS under 2 % loss", loss["fps"], "FPS", ">= 29", loss["fps"] >= 29),
        ("A/V offset under loss, largest |x|", loss["av_offset_max_abs_ms"], "ms", "<= 40",
         loss["av_offset_max_abs_ms"] is not None and loss["av_offset_max_abs_ms"] <= 40),
        ("audio concealed under 2 % loss", loss["audio_concealed_pct"], "%", "-", None),
        ("picture back after a 3 s outage", None if back is None else back + 1.0, "s", "<= 2",
         back is not None and back + 1.0 <= 2.0),
        (f"worst second under a {CAP_KBIT} kbit/s cap", cap["worst_second_fps"], "FPS", ">= 25",
         cap["worst_second_fps"] >= 25),
        ("bitrate target at the cap's end", cap["target_at_end_kbps"], "kbit/s", f"< {CAP_KBIT}",
         cap["target_at_end_kbps"] < CAP_KBIT),
        (f"bitrate target {after['seconds']:g} s after the cap", after["target_kbps"], "kbit/s", "rising",
         after["target_kbps"] > cap["target_at_end_kbps"]),
    ]  # fmt: skip
    write_json(
        args.json,
        {
            "benchmark": "network",
            "machine": machine_info(),
            "plan": PLAN,
            "report": report,
            "results": [
                {"name": n, "median": v, "p95": None, "unit": u, "budget": b, "ok": None if ok is None else bool(ok)}
                for n, v, u, b, ok in rows
            ],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
