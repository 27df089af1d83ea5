"""The table ``bench/compare`` prints: medians over runs, ratio = ours / reference."""

import statistics

# (label, metric keys shown " / "-joined, number format)
ROWS = [
    ("passdb lookup, existing account, 1 / 10 / 50 conns (req/s)",
     ["passdb1", "passdb10", "passdb50"], "{:.0f}"),
    ("doveauth CPU per lookup, 10 conns (µs)", ["passdb10_cpu_us"], "{:.0f}"),
    ("userdb lookup, 10 conns (req/s)", ["userdb10"], "{:.0f}"),
    ("account creations/s, 10 conns", ["create10"], "{:.0f}"),
    ("existing lookups during a creation burst, 10 + 10 conns (req/s)",
     ["burst_lookups"], "{:.0f}"),
    ("  the same as % of lookups alone (passdb 10)", ["burst_pct"], "{:.0f}%"),
    ("  creations/s during that burst", ["burst_creations"], "{:.0f}"),
    ("lastlogin, 1 / 10 conns (req/s)", ["lastlogin1", "lastlogin10"], "{:.0f}"),
    ("metadata token lookup / set / messagenew, 10 conns (req/s)",
     ["md_lookup10", "md_set10", "md_new10"], "{:.0f}"),
    ("filtermail 10 KB encrypted, 10 conns (msg/s)", ["fm10k"], "{:.0f}"),
    ("  daemon CPU per 10 KB message (ms)", ["fm10k_cpu_ms"], "{:.2f}"),
    ("filtermail one 25 MB message: time (s), peak RSS (MiB)",
     ["fm25_s", "fm25_hwm_mib"], "{:.2f}"),
    ("filtermail RSS after ten 25 MB messages (MiB), above idle (MiB)",
     ["fm25x10_rss_mib", "fm25x10_over_idle_mib"], "{:.1f}"),
    ("idle RSS doveauth / lastlogin / metadata (MiB)",
     ["idle_doveauth", "idle_lastlogin", "idle_metadata"], "{:.1f}"),
    ("idle RSS filtermail outgoing / incoming (MiB)",
     ["idle_filtermail-outgoing", "idle_filtermail-incoming"], "{:.1f}"),
    ("idle RSS, the five daemons together (MiB)", ["idle_sum"], "{:.0f}"),
    ("idle PSS, the five daemons together (MiB; shared pages counted once)",
     ["idle_pss_sum"], "{:.0f}"),
    ("push: LMTP delivery -> POST p50 / p99, 10 LMTP conns (ms)",
     ["push_p50_ms", "push_p99_ms"], "{:.0f}"),
    ("push: 5000-item backlog drain (POSTs/s)", ["drain_posts_s"], "{:.0f}"),
]


def derive(figures):
    """Metrics computed from others of the same run and side."""
    idle = [v for k, v in figures.items()
            if k.startswith("idle_") and k not in ("idle_sum", "idle_pss_sum")]
    if len(idle) == 5:
        figures["idle_sum"] = sum(idle)
    alone, burst = figures.get("passdb10"), figures.get("burst_lookups")
    if alone and burst:
        figures["burst_pct"] = 100 * burst / alone
    return figures


def median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _fmt(fmt, value):
    return "-" if value is None else fmt.format(value)


def render(ours_runs, ref_runs, floor_runs=()):
    """Markdown: one row per scenario; medians; ratio per figure. With
    ``floor_runs`` (bench/floor.py, a server that does no work), two more
    columns for the dict cells: its figures, and its ratio to the reference,
    the most any server could show here."""
    with_ref, with_floor = bool(ref_runs), bool(floor_runs)
    head = ["scenario"] + (["reference"] if with_ref else []) + ["ours"]
    head += (["ratio"] if with_ref else []) + (["floor"] if with_floor else [])
    head += ["floor / reference"] if with_ref and with_floor else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, keys, fmt in ROWS:
        ours = [median(ours_runs, k) for k in keys]
        if all(v is None for v in ours) and not with_ref:
            continue
        ref = [median(ref_runs, k) for k in keys]
        floor = [median(floor_runs, k) for k in keys]
        cells = [label] + ([_figures(fmt, ref)] if with_ref else []) + [_figures(fmt, ours)]
        cells += [_ratios(ours, ref)] if with_ref else []
        cells += [_figures(fmt, floor)] if with_floor else []
        cells += [_ratios(floor, ref)] if with_ref and with_floor else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _figures(fmt, values):
    return " / ".join(_fmt(fmt, v) for v in values)


def _ratios(top, bottom):
    return " / ".join(_fmt("{:.2f}", None if not (t and b) else t / b)
                      for t, b in zip(top, bottom))


def render_runs(name, runs):
    """Every run's raw figures, for the record (medians hide the spread)."""
    keys = sorted({k for r in runs for k in r})
    lines = [f"{name}: " + ", ".join(f"run {i + 1}" for i in range(len(runs)))]
    for k in keys:
        values = ["-" if r.get(k) is None else f"{r[k]:.4g}" for r in runs]
        lines.append(f"  {k}: {' | '.join(values)}")
    return "\n".join(lines)
