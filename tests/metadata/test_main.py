"""make_service wires the daemon; the HTTPS client refuses a CA file it cannot use."""

import pytest
from twisted.internet.testing import MemoryReactorClock

from chatmail_services.metadata.main import make_service


def test_make_service_builds_dict_notifier_and_metrics(make_config):
    config = make_config(metadata={"metrics": "tcp:0:interface=127.0.0.1"})
    daemon = make_service(config, MemoryReactorClock())
    names = {svc.name for svc in daemon}
    assert {"dict", "notifier", "metrics"} <= names


def test_an_unusable_ca_file_stops_the_start_naming_the_key(make_config, tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    config = make_config(metadata={"notify_ca_file": str(bad)})
    with pytest.raises(ValueError, match="metadata.notify_ca_file"):
        make_service(config, MemoryReactorClock())
