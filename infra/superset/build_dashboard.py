"""Build the dashboard 医保基金监管看板 in a Superset, through its REST API, and export it as YAML.

This is how infra/superset/dashboard/ (the committed export) was made; re-run it after changing the
charts below, then review the diff of the YAML. It runs in Superset's own virtualenv:

    SUPERSET_CONFIG_PATH=infra/superset/superset_config.py \
    $YIBAO_HOME/superset-venv/bin/python infra/superset/build_dashboard.py \
        --bi-url postgresql://superset_bi:…@127.0.0.1:54329/yibao --out infra/superset/dashboard

Datasets get the Chinese column comments of the marts as verbose names (so Superset shows
预算使用率, not consumption_rate). The database password is not exported (Superset masks it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from superset_api import SupersetAPI, create_app

DATABASE_NAME = "医保数据仓库 (bi_reader)"
DASHBOARD_TITLE = "医保基金监管看板：预算执行 · 集采执行 · 月度结算"  # title kept: slug and links stay
DASHBOARD_SLUG = "yibao-fund-oversight"

LATEST_BUDGET_SQL = (
    "select *\nfrom marts.fct_budget_consumption\n"
    "where as_of_date = (select max(as_of_date) from marts.fct_budget_consumption)"
)

# dataset key -> (table name, virtual SQL or None, description)
DATASETS = {
    "budget": ("fct_budget_consumption", None, None),
    "budget_latest": (
        "budget_consumption_latest",
        LATEST_BUDGET_SQL,
        "总额预算执行进度（最新统计日）",
    ),
    "vbp": ("fct_procurement_compliance", None, None),
    "supplier": ("fct_supplier_payment", None, None),
    "settlement": ("fct_settlement_monthly", None, None),
    "audit": ("fct_audit_summary_monthly", None, None),
    "exam": ("fct_exam_positive_rate_monthly", None, None),
}


def m(sql: str, label: str) -> dict:
    return {"expressionType": "SQL", "sqlExpression": sql, "label": label}


# chart key -> definition
CHARTS = [
    {
        "key": "budget_table",
        "name": "预算使用进度（最新统计日）",
        "viz": "table",
        "ds": "budget_latest",
        "groupby": ["hospital_code", "insurance_type", "alert_level"],
        "metrics": [
            m("MAX(consumption_rate)", "预算使用率"),
            m("MAX(time_elapsed)", "时间进度"),
            m("MAX(pace)", "进度比"),
            m("SUM(projected_year_end_amount)", "预计年末使用额"),
        ],
    },
    {
        "key": "budget_alerts",
        "name": "预算预警等级分布",
        "viz": "pie",
        "ds": "budget_latest",
        "groupby": ["alert_level"],
        "metrics": ["count"],
    },
    {
        "key": "budget_trend",
        "name": "累计申报金额走势（按险种）",
        "viz": "echarts_timeseries_line",
        "ds": "budget",
        "x_axis": "as_of_date",
        "grain": "P1D",
        "groupby": ["insurance_type"],
        "metrics": [m("SUM(consumed_amount)", "累计申报金额")],
    },
    {
        "key": "vbp_table",
        "name": "集采约定量完成情况",
        "viz": "table",
        "ds": "vbp",
        "groupby": ["batch_id", "hospital_code", "product_group", "compliance_status"],
        "metrics": [
            m("MAX(completion_rate)", "完成率"),
            m("MAX(expected_progress)", "应完成进度"),
            m("SUM(price_violation_count)", "超价采购笔数"),
        ],
    },
    {
        "key": "vbp_status",
        "name": "集采执行状态",
        "viz": "pie",
        "ds": "vbp",
        "groupby": ["compliance_status"],
        "metrics": ["count"],
    },
    {
        "key": "supplier_status",
        "name": "集采货款回款状态",
        "viz": "pie",
        "ds": "supplier",
        "groupby": ["payment_status"],
        "metrics": ["count"],
    },
    {
        "key": "settlement_bars",
        "name": "月度结算：申报、扣除、拨付、结转",
        "viz": "echarts_timeseries_bar",
        "ds": "settlement",
        "x_axis": "settlement_month",
        "grain": "P1M",
        "groupby": [],
        "metrics": [
            m("SUM(declared_amount)", "申报金额"),
            m("SUM(deduction_amount)", "扣除金额"),
            m("SUM(paid_amount)", "当月拨付"),
            m("SUM(deferred_amount)", "结转年终清算"),
        ],
    },
    {
        "key": "settlement_total",
        "name": "月度拨付合计",
        "viz": "big_number_total",
        "ds": "settlement",
        "metrics": [m("SUM(paid_amount)", "当月拨付合计")],
    },
    {
        "key": "audit_by_rule",
        "name": "智能审核发现（按规则类型、费用月份）",
        "viz": "echarts_timeseries_bar",
        "ds": "audit",
        "x_axis": "month_start",
        "grain": "P1M",
        "groupby": ["rule_type"],
        "metrics": [m("SUM(finding_count)", "发现条数")],
        "y_axis_format": ",d",
        "stack": True,
    },
    {
        "key": "exam_positive_rate",
        "name": "大型检查阳性率（预警：阳性率 ≤ 阈值）",
        "viz": "table",
        "ds": "exam",
        "groupby": ["hospital_code", "month_start", "exam_class", "is_alert"],
        "metrics": [
            m("MAX(positive_rate)", "阳性率"),
            m("MAX(threshold_rate)", "阈值"),
            m("SUM(examined_count)", "有结果的检查数"),
            m("SUM(positive_count)", "阳性数"),
        ],
        "order_by": [m("MAX(positive_rate)", "阳性率"), True],  # lowest rate (worst) first
    },
]

LAYOUT = [
    ["budget_table", "budget_alerts"],
    ["budget_trend"],
    ["vbp_table", "vbp_status", "supplier_status"],
    ["settlement_bars", "settlement_total"],
    ["audit_by_rule", "exam_positive_rate"],
]


def _label(metric) -> str:
    return metric if isinstance(metric, str) else metric["label"]


def form_data(chart: dict, dataset_id: int) -> dict:
    fd = {
        "datasource": f"{dataset_id}__table",
        "viz_type": chart["viz"],
        "adhoc_filters": [],
        "row_limit": 10000,
    }
    if chart["viz"] == "table":
        metric, ascending = chart.get("order_by", (chart["metrics"][0], False))
        fd.update(
            query_mode="aggregate",
            groupby=chart["groupby"],
            metrics=chart["metrics"],
            order_desc=not ascending,
            timeseries_limit_metric=metric,
            table_timestamp_format="smart_date",
        )
    elif chart["viz"] == "pie":
        fd.update(
            groupby=chart["groupby"],
            metric=chart["metrics"][0],
            show_legend=True,
            show_labels=True,
            label_type="key_percent",
            sort_by_metric=True,
        )
    elif chart["viz"] == "big_number_total":
        fd.update(metric=chart["metrics"][0], y_axis_format=",.2f")
    else:
        fd.update(
            x_axis=chart["x_axis"],
            time_grain_sqla=chart["grain"],
            metrics=chart["metrics"],
            groupby=chart["groupby"],
            show_legend=True,
            y_axis_format=chart.get("y_axis_format", ",.2f"),
            rich_tooltip=True,
        )
        if chart.get("stack"):
            fd["stack"] = "Stack"
    return fd


def query_context(chart: dict, dataset_id: int, fd: dict) -> dict:
    query = {
        "filters": [],
        "extras": {"having": "", "where": ""},
        "applied_time_extras": {},
        "columns": list(chart.get("groupby", [])),
        "metrics": chart["metrics"],
        "orderby": [list(chart.get("order_by", (chart["metrics"][0], False)))],
        "annotation_layers": [],
        "row_limit": 10000,
        "series_limit": 0,
        "order_desc": True,
        "url_params": {},
        "custom_params": {},
        "custom_form_data": {},
    }
    if chart["viz"] == "big_number_total":
        query.update(columns=[], orderby=[])
    if chart["viz"].startswith("echarts_timeseries"):
        query["columns"] = [
            {
                "timeGrain": chart["grain"],
                "columnType": "BASE_AXIS",
                "sqlExpression": chart["x_axis"],
                "label": chart["x_axis"],
                "expressionType": "SQL",
            },
            *chart["groupby"],
        ]
        query["series_columns"] = list(chart["groupby"])
        query["extras"]["time_grain_sqla"] = chart["grain"]
        query["orderby"] = [[chart["metrics"][0], False]]
    return {
        "datasource": {"id": dataset_id, "type": "table"},
        "force": False,
        "queries": [query],
        "form_data": fd,
        "result_format": "json",
        "result_type": "full",
    }


def column_comments(bi_url: str) -> dict[str, tuple[str | None, dict[str, str]]]:
    """marts table -> (table comment, {column: comment}), read as bi_reader from the catalog."""
    import psycopg2

    out: dict[str, tuple[str | None, dict[str, str]]] = {}
    with psycopg2.connect(bi_url) as conn, conn.cursor() as cur:
        cur.execute("""
            select c.relname, obj_description(c.oid, 'pg_class'), a.attname, col_description(c.oid, a.attnum)
            from pg_class c join pg_namespace n on n.oid = c.relnamespace
            join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
            where n.nspname = 'marts' and c.relkind in ('r', 'v', 'p')""")
        for table, tcomment, column, ccomment in cur.fetchall():
            entry = out.setdefault(table, (tcomment, {}))
            if ccomment:
                entry[1][column] = ccomment
    return out


def chart_width(row: list[str], key: str) -> int:
    """Grid columns (of 12) of a chart in its row: equal shares, except the wide exam table."""
    if "exam_positive_rate" in row and len(row) == 2:
        return 7 if key == "exam_positive_rate" else 5
    return 12 // len(row)


def build(api: SupersetAPI, bi_url: str) -> int:
    comments = column_comments(bi_url)
    db = api.find("database", "database_name", DATABASE_NAME)
    if db is None:
        db = api.post(
            "/api/v1/database/",
            {
                "database_name": DATABASE_NAME,
                "sqlalchemy_uri": bi_url,
                "expose_in_sqllab": True,
                "allow_run_async": False,
            },
        )
    db_id = db["id"]
    dataset_ids = {}
    for key, (table, sql, description) in DATASETS.items():
        existing = api.find("dataset", "table_name", table)
        if existing is None:
            payload = {"database": db_id, "schema": "marts", "table_name": table}
            if sql:
                payload["sql"] = sql
            existing = api.post("/api/v1/dataset/", payload)
        ds_id = existing["id"]
        detail = api.get(f"/api/v1/dataset/{ds_id}")["result"]
        source = "fct_budget_consumption" if key == "budget_latest" else table
        tcomment, ccomments = comments.get(source, (None, {}))
        columns = []
        for col in detail["columns"]:
            keep = {
                k: col[k]
                for k in (
                    "id",
                    "column_name",
                    "type",
                    "is_dttm",
                    "groupby",
                    "filterable",
                    "expression",
                    "description",
                    "python_date_format",
                )
                if k in col
            }
            keep["verbose_name"] = ccomments.get(col["column_name"]) or col.get(
                "verbose_name"
            )
            if col["column_name"] in (
                "as_of_date",
                "settlement_month",
                "delivery_date",
                "due_date",
                "month_start",
            ):
                keep["is_dttm"] = True
            columns.append(keep)
        api.put(
            f"/api/v1/dataset/{ds_id}?override_columns=true",
            {"description": description or tcomment, "columns": columns},
        )
        dataset_ids[key] = ds_id

    chart_ids = {}
    for chart in CHARTS:
        ds_id = dataset_ids[chart["ds"]]
        fd = form_data(chart, ds_id)
        payload = {
            "slice_name": chart["name"],
            "viz_type": chart["viz"],
            "datasource_id": ds_id,
            "datasource_type": "table",
            "params": json.dumps(fd, ensure_ascii=False),
            "query_context": json.dumps(
                query_context(chart, ds_id, fd), ensure_ascii=False
            ),
        }
        existing = api.find("chart", "slice_name", chart["name"])
        if existing:
            api.put(f"/api/v1/chart/{existing['id']}", payload)
            chart_ids[chart["key"]] = existing["id"]
        else:
            chart_ids[chart["key"]] = api.post("/api/v1/chart/", payload)["id"]

    position = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {
            "type": "GRID",
            "id": "GRID_ID",
            "children": [],
            "parents": ["ROOT_ID"],
        },
        "HEADER_ID": {
            "id": "HEADER_ID",
            "type": "HEADER",
            "meta": {"text": DASHBOARD_TITLE},
        },
    }
    by_key = {c["key"]: c for c in CHARTS}
    for r, row in enumerate(LAYOUT, 1):
        row_id = f"ROW-{r}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {
            "type": "ROW",
            "id": row_id,
            "children": [],
            "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        for key in row:
            cid = chart_ids[key]
            uuid = api.get(f"/api/v1/chart/{cid}")["result"].get("uuid")
            node = f"CHART-{key}"
            position[row_id]["children"].append(node)
            position[node] = {
                "type": "CHART",
                "id": node,
                "children": [],
                "parents": ["ROOT_ID", "GRID_ID", row_id],
                "meta": {
                    "chartId": cid,
                    "width": chart_width(row, key),
                    "height": 50,
                    "sliceName": by_key[key]["name"],
                    **({"uuid": uuid} if uuid else {}),
                },
            }
    metadata = {
        "color_scheme": "supersetColors",
        "refresh_frequency": 0,
        "timed_refresh_immune_slices": [],
        "expanded_slices": {},
        "label_colors": {},
        "cross_filters_enabled": True,
        "native_filter_configuration": [],
    }
    dash = api.find("dashboard", "slug", DASHBOARD_SLUG)
    payload = {
        "dashboard_title": DASHBOARD_TITLE,
        "slug": DASHBOARD_SLUG,
        "published": True,
        "position_json": json.dumps(position, ensure_ascii=False),
        "json_metadata": json.dumps(metadata, ensure_ascii=False),
    }
    if dash:
        dash_id = dash["id"]
        api.put(f"/api/v1/dashboard/{dash_id}", payload)
    else:
        dash_id = api.post("/api/v1/dashboard/", payload)["id"]
    for cid in chart_ids.values():
        api.put(f"/api/v1/chart/{cid}", {"dashboards": [dash_id]})
    return dash_id


EXPORTED_URI = "postgresql://superset:XXXXXXXXXX@warehouse-db:5432/yibao"


def export(api: SupersetAPI, dash_id: int, out: Path) -> list[str]:
    """Superset's own export, with three cosmetic changes that the importer does not see:
    files named after the chart keys (Superset drops non-ASCII names: charts/1.yaml), Chinese
    written as UTF-8 instead of \\u escapes, and the database URI of the compose deployment
    (host, port and user of this build machine are not part of the dashboard)."""
    import prison
    import yaml

    blob = api.get(f"/api/v1/dashboard/export/?q={prison.dumps([dash_id])}")
    if out.exists():
        shutil.rmtree(out)
    names = {c["name"]: c["key"] for c in CHARTS}
    written = []
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        for name in zf.namelist():
            rel = Path(*Path(name).parts[1:])  # drop dashboard_export_<timestamp>/
            doc = yaml.safe_load(zf.read(name))
            if rel.parts[0] == "charts":
                rel = Path("charts") / f"{names[doc['slice_name']]}.yaml"
            elif rel.parts[0] == "dashboards":
                rel = Path("dashboards") / f"{DASHBOARD_SLUG}.yaml"
            elif rel.parts[0] == "databases":
                doc["sqlalchemy_uri"] = EXPORTED_URI
            elif rel.parts[0] == "datasets":
                rel = Path("datasets") / rel.parts[1] / f"{doc['table_name']}.yaml"
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(
                yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120),
                encoding="utf-8",
            )
            written.append(str(rel))
    return sorted(written)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bi-url",
        default=os.environ.get("YIBAO_BI_URL"),
        required=not os.environ.get("YIBAO_BI_URL"),
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "dashboard"
    )
    parser.add_argument(
        "--admin-user", default=os.environ.get("SUPERSET_ADMIN_USER", "admin")
    )
    parser.add_argument(
        "--admin-password", default=os.environ.get("SUPERSET_ADMIN_PASSWORD")
    )
    args = parser.parse_args()
    app = create_app()
    # no outer app context: each test-client request gets its own, with its own g.user
    api = SupersetAPI(app, args.admin_user, args.admin_password)
    dash_id = build(api, args.bi_url)
    for name in export(api, dash_id, args.out):
        print(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
