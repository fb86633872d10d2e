{#-
R9 异常使用预警, incremental: int_doctor_brand_shares by month, int_surgery_consumable_costs by
surgery (docs/rules.md R9).

R9's groups are city-wide (per doctor's month for the brand shares; per principal diagnosis and
month, across every hospital, for the surgery medians). The brand shares re-derive whole months;
the surgery costs hold per-surgery facts only (no group figure on a surgery's row), so a night
re-derives the surgeries it touches and nothing else, and the group statistics
(int_surgery_cost_groups, a few hundred rows a year) and the alerts (fct_abnormal_use_alerts) are
joins over them. Everything when a reference file the model reads was loaded again since its
watermark (the VBP batches for the brand shares, the consumable catalog's is_high_value for the
surgery costs), and on the first build. The watermark is the model's own (macros/incremental.sql).

Touched since the watermark:
- usage lines: every version (stg_usage_line_versions: the current one and those counted before,
  e.g. a line re-sent with another used_at or surgery_id) of each line R3 re-priced since
  (int_usage_priced_against_payment_standard._batch_at): a late line, a refund, a corrected line,
  a line re-priced after a purchase or a VBP change. Brand shares: their months. Surgery costs:
  their surgeries.
- surgery costs also: the surgeries with lines on a visit whose settlements
  int_claims_with_deductions re-derived since (a late, corrected or reversed claim changes the
  effective settlement's principal diagnosis), or on the visit a re-sent settlement was on before
  (stg_claim_versions, probed for the settlements with earlier versions only: the visit it left
  has no re-derived settlement tonight).
-#}

{#- True when the model must re-derive everything. -#}
{% macro r9_everything(wm, references) -%}
    {%- if wm is none -%}
        {{- return(true) -}}
    {%- endif -%}
    {{- return(reference_changed_since(wm, references)) -}}
{%- endmacro %}

{#- The lines R3 re-priced since wm, joined to every version of them. -#}
{% macro r9_changed_line_versions(wm) -%}
    from {{ ref('int_usage_priced_against_payment_standard') }} as changed
    inner join {{ ref('stg_usage_line_versions') }} as versions
        on versions.hospital_code = changed.hospital_code
       and versions.usage_id = changed.usage_id
    where changed._batch_at > '{{ wm.batch_at }}'::timestamptz
{%- endmacro %}

{#- Name of the model's temporary table of touched months / surgeries. -#}
{% macro r9_touched_table() -%}
    pg_temp.{{ this.identifier }}__touched
{%- endmacro %}

{#- Join condition: usage line `alias` dated in a touched month `touched`. -#}
{% macro r9_in_touched_month(alias, touched='touched') -%}
    {{ alias }}.usage_date >= {{ touched }}.month_start
       and {{ alias }}.usage_date < ({{ touched }}.month_start + interval '1 month')::date
{%- endmacro %}

{#- Pre-hook of int_doctor_brand_shares: the touched months (analysed temporary table), their
    stored rows deleted; the model (append) re-derives them. -#}
{% macro r9_brand_shares_delete_touched() -%}
    {%- if execute and is_incremental() -%}
        {%- set wm = incremental_watermark(ref('stg_load_ledger')) -%}
        {%- if r9_everything(wm, [ref('stg_vbp_batches')]) -%}
            delete from {{ this }}
        {%- else -%}
            {{ analysed_temp_table(this.identifier ~ '__touched',
                "select distinct date_trunc('month', versions.used_at)::date as month_start "
                ~ r9_changed_line_versions(wm) ~ " and versions.used_at is not null") }};
            delete from {{ this }} as stored
            using {{ r9_touched_table() }} as touched
            where stored.period_month = touched.month_start
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- The surgeries with their net high-value charge, line count, first month, visit (the smallest)
    and the principal diagnosis of that visit's effective settlement, from their usage lines: all
    of them, or those of the (hospital_code, surgery_id) relation `touched` (probed through the
    usage table's (hospital_code, surgery_id) index). A surgery without a high-value line, a
    month or a diagnosed effective settlement has no row. -#}
{% macro r9_diagnosed_surgeries(touched=none) -%}
    select
        surgeries.hospital_code,
        surgeries.surgery_id,
        surgeries.visit_id,
        settlements.principal_diagnosis_code,
        surgeries.period_month,
        surgeries.line_count,
        surgeries.net_charge_amount
    from (
        select
            usage_lines.hospital_code,
            usage_lines.surgery_id,
            min(usage_lines.visit_id) as visit_id,
            date_trunc('month', min(usage_lines.used_at))::date as period_month,
            sum(usage_lines.charge_amount) as net_charge_amount,
            count(*) as line_count
        from {{ ref('int_usage_priced_against_payment_standard') }} as usage_lines
        inner join {{ ref('stg_consumable_catalog') }} as catalog
            on usage_lines.consumable_code = catalog.consumable_code
        {%- if touched %}
        inner join {{ touched }} as touched
            on usage_lines.hospital_code = touched.hospital_code
           and usage_lines.surgery_id = touched.surgery_id
        {%- endif %}
        where catalog.is_high_value
          and usage_lines.surgery_id is not null
        group by 1, 2
    ) as surgeries
    inner join {{ ref('int_claims_with_deductions') }} as settlements
        on surgeries.hospital_code = settlements.hospital_code
       and surgeries.visit_id = settlements.visit_id
       and settlements.is_effective_settlement
    where settlements.principal_diagnosis_code is not null
      and surgeries.period_month is not null
{%- endmacro %}

{#- The (hospital_code, surgery_id) pairs touched since wm (see the header). The visits of the
    re-derived settlements (~92k a night) are probed one by one into the usage lines'
    (hospital_code, visit_id) index (`offset 0`): joined, the planner hashed them against a scan of
    every usage line, 0.9-1.0 s on the 30 M-claim year (849k lines) against 0.4-0.5 s probed. A
    visit that sorts after every visit with a usage line in its hospital and numbering has none
    (macro stored_key_bound_join: tonight's lines are in the table already) and is not probed:
    90k of the 91k on that year, whose usage lines are all on inpatient stays
    (docs/scale-out.md §6). -#}
{% macro r9_touched_surgeries(wm) -%}
    {%- set lines_relation = ref('int_usage_priced_against_payment_standard') -%}
    with visits as (
        select changed.hospital_code, changed.visit_id
        from {{ ref('int_claims_with_deductions') }} as changed
        where changed._batch_at > '{{ wm.batch_at }}'::timestamptz
          and changed.visit_id is not null
        union
        -- the visits a re-sent settlement was on before (it has earlier versions)
        select versions.hospital_code, versions.visit_id
        from {{ ref('int_claims_with_deductions') }} as changed
        inner join {{ ref('stg_claim_versions') }} as versions
            on versions.hospital_code = changed.hospital_code
           and versions.settlement_id = changed.settlement_id
        where changed._batch_at > '{{ wm.batch_at }}'::timestamptz
          and (changed._prior_settlement_dates <> '[]'::jsonb
               or changed._prior_insurance_type_codes <> '[]'::jsonb)
          and versions.visit_id is not null
    )

    select versions.hospital_code, versions.surgery_id
    {{ r9_changed_line_versions(wm) }}
      and versions.surgery_id is not null
    union
    select visit_lines.hospital_code, visit_lines.surgery_id
    from visits
    {{ stored_key_bound_join(lines_relation, 'visits', 'visits', ['hospital_code'], 'visit_id') }}
    cross join lateral (
        select lines.hospital_code, lines.surgery_id
        from {{ lines_relation }} as lines
        where lines.hospital_code = visits.hospital_code
          and lines.visit_id = visits.visit_id
          and lines.surgery_id is not null
          and {{ below_stored_max('visits.visit_id', 'bound', 'visit_id') }}
        offset 0
    ) as visit_lines
{%- endmacro %}

{#- Pre-hook of int_surgery_consumable_costs: the surgeries the build re-derives, as an analysed
    temporary table pg_temp.<model>__touched (hospital_code, surgery_id) that the model and the
    post-hook read. Empty on the first build; on a re-derivation of everything (the catalog was
    loaded again) empty too, the stored rows being deleted here. -#}
{% macro r9_surgery_costs_touched() -%}
    {%- if execute -%}
        {%- set empty = "select null::text as hospital_code, null::text as surgery_id where false" -%}
        {%- if is_incremental() -%}
            {%- set wm = incremental_watermark(ref('stg_load_ledger')) -%}
            {%- if r9_everything(wm, [ref('stg_consumable_catalog')]) -%}
                delete from {{ this }};
                {{ analysed_temp_table(this.identifier ~ '__touched', empty) }}
            {%- else -%}
                {{ analysed_temp_table(this.identifier ~ '__touched', r9_touched_surgeries(wm)) }}
            {%- endif -%}
        {%- else -%}
            {{ analysed_temp_table(this.identifier ~ '__touched', empty) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of int_surgery_consumable_costs: a touched surgery that this build did not write
    (no high-value line left, no month, or no diagnosed effective settlement) leaves the table.
    "Written by this build" is `_batch_at = now()`: the hook runs in the model's transaction (dbt's
    default for a config post_hook; never declare it with `transaction: false`), where now() is the
    `_batch_at` the insert wrote. -#}
{% macro r9_surgery_costs_drop_vanished() -%}
    delete from {{ this }} as stored
    using {{ r9_touched_table() }} as touched
    where stored.hospital_code = touched.hospital_code
      and stored.surgery_id = touched.surgery_id
      and stored._batch_at <> now()
{%- endmacro %}
