"""Pseudonymisation at the door: ID numbers become HMAC-SHA256 keys before anything is written.

The key comes from Airflow's secrets (Variable ``yibao_pseudonym_key``, which Airflow also reads from
``AIRFLOW_VAR_YIBAO_PSEUDONYM_KEY`` or a configured secrets backend) or from ``YIBAO_PSEUDONYM_KEY``;
never from code. Without a key the loader refuses to run.
"""

from __future__ import annotations

import hashlib
import hmac
import os


class MissingKey(RuntimeError):
    pass


def load_key() -> bytes:
    key = os.environ.get("YIBAO_PSEUDONYM_KEY") or os.environ.get("AIRFLOW_VAR_YIBAO_PSEUDONYM_KEY")
    if not key:
        try:  # Airflow's secrets: metadata DB, env or a secrets backend
            from airflow.sdk import Variable

            key = Variable.get("yibao_pseudonym_key", default=None)
        except Exception:  # noqa: BLE001 - not inside Airflow
            key = None
    if not key or len(key) < 16:
        raise MissingKey(
            "no pseudonymisation key: set the Airflow Variable 'yibao_pseudonym_key' or the environment "
            "variable YIBAO_PSEUDONYM_KEY (at least 16 characters; keep it secret and stable, a new key "
            "gives every patient a new pseudonym)"
        )
    return key.encode("utf-8")


class Pseudonymiser:
    def __init__(self, key: bytes):
        self._key = key

    def __call__(self, value: str) -> str:
        return hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()
