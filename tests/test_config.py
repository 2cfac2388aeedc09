"""Settings from the environment: defaults, and a clear error for each bad value."""

from __future__ import annotations

import pytest

from dispatch.config import Settings
from dispatch.core.errors import InvalidInput


def test_live_push_defaults() -> None:
    s = Settings.from_env({})
    assert (s.ack_timeout_s, s.resend_s, s.heartbeat_timeout_s, s.ws_queue) == (30.0, 10.0, 90.0, 1000)
    assert s.redis_url is None and s.redis_channel == "dispatch:events"
    assert s.ws_deflate is False


def test_live_push_settings_are_read() -> None:
    s = Settings.from_env(
        {
            "DISPATCH_ACK_TIMEOUT_S": "45",
            "DISPATCH_RESEND_S": "5",
            "DISPATCH_HEARTBEAT_TIMEOUT_S": "120",
            "DISPATCH_WS_QUEUE": "250",
            "DISPATCH_REDIS_URL": "redis://127.0.0.1:6379/2",
            "DISPATCH_REDIS_CHANNEL": "hanoi",
            "DISPATCH_WS_DEFLATE": "on",
        }
    )
    assert s.ws_deflate is True
    assert (s.ack_timeout_s, s.resend_s, s.heartbeat_timeout_s, s.ws_queue) == (45.0, 5.0, 120.0, 250)
    assert (s.redis_url, s.redis_channel) == ("redis://127.0.0.1:6379/2", "hanoi")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("DISPATCH_ACK_TIMEOUT_S", "soon", "DISPATCH_ACK_TIMEOUT_S must be a number of seconds"),
        ("DISPATCH_RESEND_S", "0", "between 0.1 and 86400"),
        ("DISPATCH_HEARTBEAT_TIMEOUT_S", "-5", "between 0.1 and 86400"),
        ("DISPATCH_WS_QUEUE", "lots", "DISPATCH_WS_QUEUE must be a whole number from 1 to 1000000"),
        ("DISPATCH_WS_QUEUE", "0", "from 1 to 1000000"),
        ("DISPATCH_REDIS_URL", "127.0.0.1:6379", "use redis://HOST:PORT/DB"),
        ("DISPATCH_WS_DEFLATE", "maybe", "DISPATCH_WS_DEFLATE must be 1 or 0"),
    ],
)
def test_bad_values_are_refused_with_the_reason(name: str, value: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        Settings.from_env({name: value})


def test_online_tile_url_is_off_by_default_and_read_when_set() -> None:
    assert Settings.from_env({}).online_tile_url is None
    assert Settings.from_env({"DISPATCH_ONLINE_TILE_URL": ""}).online_tile_url is None
    url = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    assert Settings.from_env({"DISPATCH_ONLINE_TILE_URL": url}).online_tile_url == url


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("tile.openstreetmap.org/{z}/{x}/{y}.png", "does not start with http:// or https://"),
        ("ftp://tiles.example/{z}/{x}/{y}.png", "does not start with http:// or https://"),
        ("https://tile.openstreetmap.org/{z}/{x}.png", r"lacks \{y\}"),
        ("https://tiles.example/tile.png", r"lacks \{z\}, \{x\}, \{y\}"),
        ("tiles/{z}/{y}.png", r"http:// or https://; it lacks \{x\}"),
    ],
)
def test_bad_online_tile_url_is_refused_with_the_reason(value: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=r"DISPATCH_ONLINE_TILE_URL .*" + words + r".*use e\.g\. https://"):
        Settings.from_env({"DISPATCH_ONLINE_TILE_URL": value})
