"""Import infra/superset/dashboard into a Superset, as its UI's "Import dashboard" dialog does.

The export holds the database connection with its password masked (Superset never exports one), so
the import must be given the password: `superset import-dashboards` (CLI) cannot, the import API
(POST /api/v1/dashboard/import/, what the UI calls) can. Runs in Superset's virtualenv:

    python infra/superset/import_dashboard.py --bi-url postgresql://superset:…@host:5432/yibao

The password is taken from --bi-url; point the connection at that URL afterwards with
`superset set-database-uri` (verify.sh does).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from superset_api import SupersetAPI, create_app  # noqa: E402 - after the sys.path set-up above


def bundle(src: Path) -> tuple[bytes, list[str]]:
    """The export folder as the zip Superset exports (one root folder)."""
    buf = io.BytesIO()
    databases = []
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(src.rglob("*.yaml")):
            rel = path.relative_to(src).as_posix()
            zf.write(path, "yibao_dashboard/" + rel)
            if rel.startswith("databases/"):
                databases.append(rel)
    return buf.getvalue(), databases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bi-url",
        default=os.environ.get("YIBAO_BI_URL"),
        required=not os.environ.get("YIBAO_BI_URL"),
    )
    parser.add_argument("--src", type=Path, default=HERE / "dashboard")
    parser.add_argument(
        "--admin-user", default=os.environ.get("SUPERSET_ADMIN_USER", "admin")
    )
    parser.add_argument(
        "--admin-password", default=os.environ.get("SUPERSET_ADMIN_PASSWORD")
    )
    args = parser.parse_args()
    password = unquote(urlsplit(args.bi_url).password or "")
    blob, databases = bundle(args.src)
    api = SupersetAPI(create_app(), args.admin_user, args.admin_password)
    r = api.client.post(
        "/api/v1/dashboard/import/",
        headers=api.headers,
        data={
            "formData": (io.BytesIO(blob), "yibao_dashboard.zip"),
            "overwrite": "true",
            "passwords": json.dumps({name: password for name in databases}),
        },
        content_type="multipart/form-data",
    )
    if r.status_code != 200:
        print(
            f"import failed: HTTP {r.status_code} {r.get_data(as_text=True)[:2000]}",
            file=sys.stderr,
        )
        return 1
    print(
        f"imported {args.src.name}: {len(zipfile.ZipFile(io.BytesIO(blob)).namelist())} files"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
