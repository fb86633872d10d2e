"""A small client of Superset's REST API, run inside Superset's own virtualenv and app context
(Flask test client: no web server, no network). Used by build_dashboard.py and verify_charts.py."""

from __future__ import annotations

import os


class SupersetAPI:
    def __init__(self, app, username: str, password: str):
        self.client = app.test_client()
        r = self.client.post(
            "/api/v1/security/login",
            json={
                "username": username,
                "password": password,
                "provider": "db",
                "refresh": True,
            },
        )
        if r.status_code != 200:
            raise RuntimeError(
                f"Superset login failed ({r.status_code}): {r.get_data(as_text=True)[:300]}"
            )
        self.headers = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
        r = self.client.get("/api/v1/security/csrf_token/", headers=self.headers)
        if r.status_code == 200:
            self.headers["X-CSRFToken"] = r.get_json()["result"]
            self.headers["Referer"] = "http://localhost/"

    def call(self, method: str, path: str, expect: tuple[int, ...] = (200, 201), **kw):
        r = getattr(self.client, method)(path, headers=self.headers, **kw)
        if r.status_code not in expect:
            raise RuntimeError(
                f"{method.upper()} {path} -> {r.status_code}: {r.get_data(as_text=True)[:1500]}"
            )
        if r.mimetype == "application/json":
            return r.get_json()
        return r.get_data()

    def get(self, path, **kw):
        return self.call("get", path, **kw)

    def post(self, path, payload, **kw):
        return self.call("post", path, json=payload, **kw)

    def put(self, path, payload, **kw):
        return self.call("put", path, json=payload, **kw)

    def find(self, resource: str, column: str, value: str):
        rows = self.get(f"/api/v1/{resource}/?q=" + _rison(column, value))["result"]
        return rows[0] if rows else None


def _rison(column: str, value: str) -> str:
    import prison

    return prison.dumps({"filters": [{"col": column, "opr": "eq", "value": value}]})


def create_app():
    os.environ.setdefault("FLASK_APP", "superset")
    from superset.app import create_app as _create

    return _create()
