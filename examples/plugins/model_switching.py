#!/usr/bin/env python3
"""A Sentinel plugin detector: rapid model switching.

A behavioural detector of users who switch models rapidly, speaking Sentinel's
JSON-lines plugin protocol (see README.md beside this file): for each user
(``metadata.user_id``) it keeps the models (``data.model``) of the user's last
``window_size`` events, and once that window is full it reports the user
whenever the number of distinct models in it exceeds
``threshold * window_size``.

Config (the detector's ``config:`` block):

- ``threshold``: distinct models per event, a number in [0, 1] (default 0.8);
- ``window_size``: events per user in the window, an integer >= 2
  (default 100);
- ``max_users``: users remembered at most, the least recently seen dropped
  first (default 10000).

Events without a user or a model are ignored. A finding is reported for every
event while the pattern lasts; Sentinel deduplicates them into one open
anomaly per user.

Python 3 standard library only. Logs go to stderr: stdout is the protocol.
"""

import collections
import json
import sys

TITLE = "Unusual behavioral pattern detected"
DESCRIPTION = "User is rapidly switching between different models"


class ConfigError(ValueError):
    """The config block is not valid."""


def number(config, key, default):
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    return value


class ModelSwitchingDetector:
    """Per-user windows of recent models."""

    def __init__(self, config):
        if not isinstance(config, dict):
            raise ConfigError("config must be a mapping")
        unknown = sorted(set(config) - {"threshold", "window_size", "max_users"})
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(unknown)} (expected threshold, window_size, max_users)")
        self.threshold = float(number(config, "threshold", 0.8))
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {self.threshold}")
        self.window_size = number(config, "window_size", 100)
        if not isinstance(self.window_size, int) or self.window_size < 2:
            raise ConfigError(f"window_size must be an integer >= 2, got {self.window_size!r}")
        self.max_users = number(config, "max_users", 10000)
        if not isinstance(self.max_users, int) or self.max_users < 1:
            raise ConfigError(f"max_users must be an integer >= 1, got {self.max_users!r}")
        # user id -> deque of that user's last window_size models, least recently seen user first.
        self.windows = collections.OrderedDict()

    def detect(self, event):
        """The results for one event (a list of result dicts)."""
        user = (event.get("metadata") or {}).get("user_id")
        model = (event.get("data") or {}).get("model")
        if not user or not model:
            return []
        window = self.windows.pop(user, None)
        if window is None:
            window = collections.deque(maxlen=self.window_size)
            if len(self.windows) >= self.max_users:
                self.windows.popitem(last=False)
        self.windows[user] = window
        window.append(model)
        if len(window) < self.window_size:
            return []
        unique_models = len(set(window))
        if unique_models <= self.threshold * len(window):
            return []
        switch_rate = unique_models / len(window)
        # 0.5 at the threshold, towards 1 as the rate grows (Sentinel's score_of).
        score = switch_rate / (switch_rate + self.threshold) if switch_rate + self.threshold > 0 else 1.0
        return [
            {
                "severity": "warning",
                "score": round(score, 4),
                "title": TITLE,
                "description": DESCRIPTION,
                "affected_entity": {"type": "user", "id": user, "name": user},
                "metrics": {
                    "window_size": len(window),
                    "unique_models": unique_models,
                    "switch_rate": round(switch_rate, 4),
                    "observed": round(switch_rate, 4),
                    "threshold": self.threshold,
                },
            }
        ]


def send(message):
    sys.stdout.write(json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n")
    sys.stdout.flush()


def main():
    detector = None
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0  # Sentinel closed our stdin: shut down.
        try:
            message = json.loads(line)
            kind = message.get("type") if isinstance(message, dict) else None
        except ValueError as e:
            send({"type": "error", "message": f"not JSON: {e}"})
            continue
        if kind == "init":
            try:
                detector = ModelSwitchingDetector(message.get("config") or {})
            except ConfigError as e:
                send({"type": "error", "message": str(e)})
                return 1
            send({"type": "ready"})
        elif kind == "event":
            if detector is None:
                send({"type": "error", "message": "event before init"})
                continue
            event = message.get("event")
            try:
                results = detector.detect(event if isinstance(event, dict) else {})
            except Exception as e:  # one bad event must not stop the plugin
                print(f"model_switching: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
                send({"type": "error", "message": f"{type(e).__name__}: {e}"})
                continue
            send({"type": "results", "results": results})
        else:
            send({"type": "error", "message": f"unknown message type {kind!r}"})


if __name__ == "__main__":
    sys.exit(main())
