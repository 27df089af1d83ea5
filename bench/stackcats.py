#!/usr/bin/env python3
"""Split a daemon's CPU samples into cost centres: where does a request's time go?

Reads py-spy's raw (collapsed) output, one ``frame;frame;...;frame COUNT`` line
per distinct stack (``py-spy record --format raw --nonblocking --threads``,
idle threads excluded), and charges every sample to the innermost frame that
falls into a category below (so json called from the store counts as json,
the store's own Python and its system calls count as the store). Samples
with no category frame are "other"; the top of that rest is listed too, so
nothing hides. Samples of threads that only wait (a pool worker waiting for
a job, the reactor in epoll) are dropped; with ``--cpu-us`` (the daemon's
CPU per request, e.g. from dictload.py --pid) each share is also shown as
µs per request. Shares of wall-clock samples, not of CPU: a thread waiting
for the GIL counts where it waits.

    py-spy record --pid PID --rate 250 --duration 10 --format raw --nonblocking \\
        --output /tmp/doveauth.txt
    python3 bench/stackcats.py --cpu-us 200 /tmp/doveauth.txt
"""

import argparse
import collections
import re
import sys

# (category, regex on one frame "function (file:line)"), innermost match wins;
# the order breaks ties when one frame matches several. twisted/python/log.py's
# callWithLogger wraps every reactor event in a log context: it is dispatch.
CATEGORIES = [
    ("json", r"\(json/|\(.*/json/"),
    ("logging", r"/logging/|twisted/logger/"),
    ("metrics (prometheus_client)", r"prometheus_client/|core/metrics\.py"),
    ("dict codec + protocol", r"core/dictcodec\.py|core/dictproto\.py"),
    ("store", r"core/store/|pathlib\.py|/os\.py|/shutil\.py|/tempfile\.py"),
    ("domain (policy)", r"doveauth/policy\.py|metadata/policy\.py|lastlogin/|core/addresses\.py"),
    ("thread-pool hop", r"twisted/python/threadpool\.py|twisted/python/threadable\.py|"
                        r"twisted/_threads/|twisted/internet/threads\.py|/threading\.py|"
                        r"/queue\.py|core/threads\.py|callFromThread|_callFromThread|"
                        r"twisted/python/context\.py"),
    ("Deferred machinery", r"twisted/internet/defer\.py|twisted/python/failure\.py"),
    ("reactor + socket I/O", r"twisted/internet/(epollreactor|posixbase|base|tcp|unix|abstract|"
                             r"_posixserialport|fdesc|selectreactor|udp|interfaces)\.py|"
                             r"twisted/protocols/basic\.py|twisted/python/log\.py|"
                             r"twisted/python/sendmsg\.py|twisted/python/util\.py"),
]
_LINE = re.compile(r"^(.*) (\d+)$")
# Waiting, not working: py-spy --nonblocking cannot always tell, so these
# innermost frames are dropped (a worker waiting for a job, epoll waiting).
IDLE = re.compile(r"^(Condition\.wait \(threading\.py|EPollReactor\.doPoll \(twisted/internet/"
                  r"epollreactor\.py:227\)|Event\.wait|Thread\._wait_for_tstate_lock)")


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
        if IDLE.match(stack.rsplit(";", 1)[-1]):
            continue
        name, frame = categorize(stack, compiled)
        totals[name] += count
        all_samples += count
        if name == "other":
            leftovers[frame] += count
    return totals, leftovers, all_samples


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="py-spy --format raw output")
    p.add_argument("--cpu-us", type=float,
                   help="the daemon's measured CPU µs/request: shares are scaled to it")
    p.add_argument("--top", type=int, default=8, help="uncategorized frames to list")
    args = p.parse_args(argv)
    for path in args.files:
        with open(path, encoding="utf-8", errors="replace") as f:
            totals, leftovers, samples = summarize(f)
        print(f"## {path}: {samples} working samples")
        for name, count in totals.most_common():
            share = 100 * count / samples
            per_req = ""
            if args.cpu_us:
                per_req = f"  ~{share / 100 * args.cpu_us:6.1f} µs/request"
            print(f"  {share:5.1f}%  {name}{per_req}")
        print("  uncategorized, innermost frame:")
        for frame, count in leftovers.most_common(args.top):
            print(f"    {100 * count / samples:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
