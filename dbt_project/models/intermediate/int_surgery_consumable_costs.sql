{{ config(
    materialized='incremental',
    incremental_strategy='delete_insert_probed',
    unique_key=['hospital_code', 'surgery_id'],
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'surgery_id'], 'unique': true},
        {'columns': ['principal_diagnosis_code', 'period_month', 'net_charge_amount']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ r9_surgery_costs_touched() }}",
    post_hook="{{ r9_surgery_costs_drop_vanished() }}"
) }}

-- R9 surgery cost (异常使用预警), per surgery: the net charge of high-value consumables (catalog
-- is_high_value; refunds net out), the number of those lines, the month (of the first use), the
-- visit (the smallest of its lines) and the principal diagnosis of that visit's effective
-- settlement. Per-surgery facts only: the group statistics (size and median per principal
-- diagnosis and month) are int_surgery_cost_groups, the alerts fct_abnormal_use_alerts.
--
-- Incremental by surgery (macros/r9.sql): the pre-hook writes the surgeries touched since this
-- table was written (the surgeries of every version of each re-priced usage line, and those
-- with lines on a visit whose settlements were re-derived or that a re-sent settlement was on
-- before); this query re-derives them from all their lines (delete+insert), and the post-hook
-- deletes the touched surgeries it did not write (no longer qualifying). Everything on the
-- first build and when the consumable catalog was loaded again.

-- depends_on: {{ ref('stg_usage_line_versions') }}
-- depends_on: {{ ref('stg_claim_versions') }}
-- depends_on: {{ ref('stg_load_ledger') }}
{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = r9_everything(wm, [ref('stg_consumable_catalog')]) %}

with surgeries as (

    {% if everything %}
    {{ r9_diagnosed_surgeries() }}
    {% else %}
    {{ r9_diagnosed_surgeries(r9_touched_table()) }}
    {% endif %}

)

select
    -- ids
    hospital_code,
    surgery_id,
    visit_id,
    -- codes
    principal_diagnosis_code,
    -- dates
    period_month,
    -- measures
    line_count::integer as line_count,
    net_charge_amount::numeric(18, 2) as net_charge_amount,
    -- lineage
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from surgeries
