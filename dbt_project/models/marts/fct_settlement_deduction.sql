{{ config(
    materialized='incremental',
    incremental_strategy='delete_insert_probed',
    unique_key=['hospital_code', 'settlement_id'],
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'settlement_id'], 'unique': true},
        {'columns': ['_batch_at']},
    ],
    post_hook=["delete from {{ this }} where _batch_at = now() and not _is_deduction", "{{ last_batch_statistics() }}"]
) }}

-- R6 deductions by settlement: one row per effective settlement whose visit carries unreasonable
-- excess or smart-audit violation amounts (R11-R20, violation findings of its fee lines), with the
-- deductible base, the fund share and the deduction that R7 counts in its month.
--
-- Incremental: every settlement re-classified upstream since this table was written (this schema
-- may lag a night behind) that now carries a deduction or has a row here: delete+insert replaces
-- its row, and the post-hook then removes the rows of this build without one (_is_deduction
-- false), so a settlement that stopped being effective or lost its excess leaves the table.
-- Without this, the model re-read every settlement ever loaded each night; the settlements
-- without a deduction and without a row (most of a night: ~0.6 % of settlements are deducted)
-- are not written at all (they were written and deleted again: 158k rows for 1k kept).
-- Upgrade: a table written by the earlier full-rebuild model has no lineage columns; the
-- watermark macro then asks for --full-refresh, which transform.build does once by itself.

{%- set wm = incremental_watermark() %}
{#- R6's "this settlement carries a deduction": effective, with an excess or a violation amount -#}
{%- set carries_deduction -%}
is_effective_settlement and (visit_excess_amount <> 0 or audit_violation_amount <> 0)
{%- endset %}

select
    -- ids
    hospital_code,
    settlement_id,
    visit_id,
    insurance_type_code as insurance_type,
    -- dates
    settled_at,
    date_trunc('month', settlement_date)::date as settlement_month,
    -- amounts
    total_amount,
    fund_paid_amount,
    visit_excess_amount as unreasonable_excess_amount,
    audit_violation_amount,
    (visit_excess_amount + audit_violation_amount)::numeric(18, 2) as deductible_base_amount,
    deduction_amount,
    -- lineage
    coalesce({{ carries_deduction }}, false) as _is_deduction,
    {{ as_of_date() }} as _through_as_of,
    now() as _batch_at
from {{ ref('int_claims_with_deductions') }} as claims
{% if is_incremental() %}
where _batch_at > '{{ wm.batch_at }}'::timestamptz
  and (
      coalesce({{ carries_deduction }}, false)
      -- one unique-index probe per settlement without a deduction (`offset 0`: PostgreSQL may not
      -- turn the exists into a hashed subplan, which read every stored row to probe a few: on the
      -- 30 M-line audit city 1.27 M rows, 0.5 s, for the night's 9k settlements without one,
      -- docs/scale-out.md §7.16)
      or exists (
          select 1
          from {{ this }} as stored
          where stored.hospital_code = claims.hospital_code
            and stored.settlement_id = claims.settlement_id
          offset 0
      )
  )
{% else %}
where {{ carries_deduction }}
{% endif %}
