"""docs/metrics.md names every metric a daemon defines, and no metric that is gone."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFINED = re.compile(r'(?:Counter|Gauge|Histogram|LastSuccess)\(\s*"(chatmail_[a-z_]+)"')


def test_every_daemon_metric_is_documented_and_every_documented_one_exists():
    defined = {name for path in (ROOT / "services").rglob("*.py")
               for name in DEFINED.findall(path.read_text())}
    doc = (ROOT / "docs/metrics.md").read_text()
    # the tables up to the expiry job's textfile (written by expire/stats.py)
    daemons = doc.partition("## chatmail-expire")[0]
    documented = set(re.findall(r"^\| `(chatmail_[a-z_]+)`", daemons, re.M))
    assert defined and sorted(defined - documented) == []
    assert sorted(documented - defined) == []
