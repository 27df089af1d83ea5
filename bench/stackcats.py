#!/usr/bin/env python3
"""Split a daemon's CPU samples into cost centres: where does a request's time go?

Reads py-spy's raw (collapsed) output, one ``frame;frame;...;frame COUNT`` line
per distinct stack (``py-spy record --format raw --nonblocking --threads``,
idle threads excluded), and charges every sample to the innermost frame that
falls into a category below (so json called from the store counts as json,
the store's own Python and its system calls count as the store). Samples
with no category frame are "other"; the top of that rest is listed too, so
nothing hides.

    py-spy record --pid PID --rate 250 --duration 10 --format raw --nonblocking \\
        --output /tmp/doveauth.txt
    python3 bench/stackcats.py /tmp/doveauth.txt
"""

import argparse
import collections
import re
import sys

# (category, regex on one frame "function (file:line)"), innermost match wins;
# the order breaks ties when one frame matches several.
CATEGORIES = [
    ("json", r"\(json/|\(.*/json/"),
    ("logging", r"/logging/|twisted/logger/|twisted/python/log\.py"),
    ("metrics (prometheus_client)", r"prometheus_client/|core/metrics\.py"),
    ("dict codec + protocol", r"core/dictcodec\.py|core/dictproto\.py"),
    ("store", r"core/store/|pathlib\.py|/os\.py|/shutil\.py|/tempfile\.py"),
    ("domain (policy)", r"doveauth/policy\.py|metadata/push\.py|lastlogin/|core/addresses\.py"),
    ("thread-pool hop", r"twisted/python/threadpool\.py|twisted/python/threadable\.py|"
                        r"twisted/_threads/|twisted/internet/threads\.py|/threading\.py|"
                        r"/queue\.py|core/runner\.py|callFromThread|_callFromThread|"
                        r"twisted/python/context\.py"),
    ("Deferred machinery", r"twisted/internet/defer\.py|twisted/python/failure\.py"),
    ("reactor + socket I/O", r"twisted/internet/(epollreactor|posixbase|base|tcp|unix|abstract|"
                             r"_posixserialport|fdesc|selectreactor|udp|interfaces)\.py|"
                             r"twisted/protocols/basic\.py|twisted/python/log\.py:\d+ callWithLogger"),
]
_LINE = re.compile(r"^(.*) (\d+)$")


def categorize(stack: str, compiled):
    frames = stack.split(";")
    for frame in reversed(frames):
        for name, pattern in compiled:
            if pattern.search(frame):
                return name, frame
    return "other", frames[-1] if frames else "?"


def summarize(lines):
    compiled = [(name, re.compile(p)) for name, p in CATEGORIES]
    totals, leftovers, all_samples = collections.Counter(), collections.Counter(), 0
    for line in lines:
        m = _LINE.match(line.strip())
        if not m:
            continue
        stack, count = m.group(1), int(m.group(2))
        name, frame = categorize(stack, compiled)
        totals[name] += count
        all_samples += count
        if name == "other":
            leftovers[frame] += count
    return totals, leftovers, all_samples


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="py-spy --format raw output")
    p.add_argument("--requests", type=int, help="requests served while sampling: adds µs/request")
    p.add_argument("--rate", type=float, default=250, help="py-spy --rate used (samples/s)")
    p.add_argument("--top", type=int, default=8, help="uncategorized frames to list")
    args = p.parse_args(argv)
    for path in args.files:
        with open(path, encoding="utf-8", errors="replace") as f:
            totals, leftovers, samples = summarize(f)
        print(f"## {path}: {samples} samples")
        for name, count in totals.most_common():
            share = 100 * count / samples
            per_req = ""
            if args.requests:
                per_req = f"  {count / args.rate / args.requests * 1e6:7.1f} µs/request"
            print(f"  {share:5.1f}%  {name}{per_req}")
        print("  uncategorized, innermost frame:")
        for frame, count in leftovers.most_common(args.top):
            print(f"    {100 * count / samples:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
