{{ config(
    materialized='incremental',
    incremental_strategy='replace_stored',
    unique_key=['hospital_code', 'settlement_id'],
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'settlement_id'], 'unique': true},
        {'columns': ['hospital_code', 'visit_id']},
        {'columns': ['hospital_code', 'reversal_of']},
        {'columns': ['hospital_code', 'insurance_type_code', 'settlement_date']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ materialize_night_rows(stg_claims_since, ref('stg_load_ledger'), 'int_claims_with_deductions__night') }}",
    post_hook=[
        "{{ partial_index(['hospital_code', 'patient_key'], \"medical_category_code = '21'\") }}",
        "{{ analyze_night_rows() }}",
        "{{ audit_deductible_changes_consumed() }}",
    ]
) }}

-- R6 deductions (不合理费用扣除) on the latest version of every settlement.
-- A reversal (冲正) is a settlement with reversal_of set; the settlement it names is reversed.
-- A visit's effective settlement is its latest settled_at among settlements that are neither a
-- reversal nor reversed (ties: the greater settlement_id). The visit's deduction attaches to it:
-- round(sum of the visit's unreasonable_excess x fund_paid / total_amount, 2) clamped to
-- [0, fund_paid], 0 when total_amount is 0; every other settlement carries 0.
-- declared_amount = fund_paid - negotiated_drug_amount (R7), counted in the settlement's month.
--
-- Incremental: re-classifies every settlement of a visit touched since this table was written:
-- a changed settlement (new or old version's visit), a settlement whose reversal changed, or a
-- visit whose usage lines were re-priced (current or previous visit of the line). A stored
-- settlement whose re-derived values (reversed, effective, excess, violations, deduction, audit
-- digest) are the ones it holds is not written again: the models downstream follow the rows
-- written since their watermark, and the row did not change.
-- Written by the replace_stored strategy (macros/incremental.sql): only the rows marked
-- _replaces_stored (a changed settlement with a previous version, a stored settlement re-derived)
-- delete their stored row first; a new settlement, most of a night, is inserted without a probe.
--
-- Smart audit (R6 extended, docs/rules.md R11-R22): the visit's deductible base adds, over its fee
-- lines, each line's violation amount = the flagged_amount of its violation finding of largest
-- magnitude (int_audit_deductible_lines; R14/R19 decided here on the effective settlement by the
-- macro audit_settlement_condition). An incremental build also re-derives every visit whose
-- deductible base changed since it was written (macro audit_deductible_changed_visits: the visits
-- of the int_audit_deductible_lines rows written since, which are only rows that changed, and of
-- the rows it deleted, from its log), and every effective settlement when the rule library or
-- the hospital registry changed or the deductible base was rebuilt. Before 2026-12-04 it
-- re-derived every visit the night's matches touched (audit_touched_visits), ~100k on a 30 M-line
-- city, to write ~6k: most were visits of the window groups re-walked to the same findings
-- (docs/scale-out.md §7.9). _audit_digest fingerprints the visit's deductible findings when its
-- row was written (for checks; not a trigger).

{%- set claim_columns = [
    'hospital_code', 'settlement_id', 'visit_id', 'patient_key', 'reversal_of',
    'insurance_type_code', 'medical_category_code', 'principal_diagnosis_code', 'drg_code',
    'patient_sex', 'patient_birth_year',
    'total_amount', 'fund_paid_amount', 'other_fund_paid_amount', 'account_paid_amount',
    'cash_paid_amount', 'negotiated_drug_amount',
    'admission_date', 'discharge_date', 'settled_at',
    'business_date', 'load_id', 'source_row',
] %}
{#- the values a stored settlement's re-classification can change (everything else is copied) -#}
{%- set stored_derived = [
    ('is_reversed', 'boolean'), ('is_effective_settlement', 'boolean'),
    ('visit_excess_amount', 'numeric'), ('audit_violation_amount', 'numeric'),
    ('deduction_amount', 'numeric'), ('_audit_digest', 'text'),
] %}
-- depends_on: {{ ref('int_audit_rule_matches') }}
-- depends_on: {{ ref('stg_audit_rules') }}
-- depends_on: {{ ref('stg_hospitals') }}
{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- do require_columns_or_full_refresh(['_audit_digest', '_prior_patient_keys', '_replaces_stored']) %}
{%- set audit_changed = audit_deductible_changed_visits(wm) if is_incremental() and not audit_everything_since(wm) else none %}

with

{% if is_incremental() %}

changed_claims as not materialized (

    -- the night's latest versions (stg_claims, loaded since the watermark; macro
    -- stg_claims_since), materialised and analysed by the pre-hook so that the planner knows the
    -- night's size (and, the CTE being inlined, the columns' statistics: e.g. how few carry
    -- reversal_of)
    select *
    from pg_temp.int_claims_with_deductions__night

),

previous_versions as (

    -- one unique-index probe per changed settlement with another version in raw (`offset 0`: the
    -- join was estimated at ~2 % of the night and hashed against a scan of every stored settlement,
    -- 1.1 s at 1.5 M); a settlement whose only version is tonight's has nothing stored (raw is
    -- append-only), and those are ~98 % of a night
    select stored.*
    from changed_claims
    cross join lateral (
        select *
        from {{ this }} as stored
        where stored.hospital_code = changed_claims.hospital_code
          and stored.settlement_id = changed_claims.settlement_id
        offset 0
    ) as stored
    where changed_claims._has_other_versions

),

repriced_usage as (

    select hospital_code, visit_id, _prior_visit_ids
    from {{ ref('int_usage_priced_against_payment_standard') }}
    where _batch_at > '{{ wm.batch_at }}'::timestamptz

),

reversal_targets as (

    select hospital_code, reversal_of as settlement_id
    from changed_claims
    where reversal_of is not null

    union

    select hospital_code, reversal_of as settlement_id
    from previous_versions
    where reversal_of is not null

),

touched_visits as (

    select hospital_code, visit_id from changed_claims
    union
    select hospital_code, visit_id from previous_versions
    union
    -- the visits of the settlements named by a reversal: one unique-index probe per target
    -- (`offset 0`: never a hash join over every stored settlement)
    select stored.hospital_code, stored.visit_id
    from reversal_targets
    cross join lateral (
        select target.hospital_code, target.visit_id
        from {{ this }} as target
        where target.hospital_code = reversal_targets.hospital_code
          and target.settlement_id = reversal_targets.settlement_id
        offset 0
    ) as stored
    union
    select hospital_code, visit_id from repriced_usage
    union
    select repriced_usage.hospital_code, prior.visit_id
    from repriced_usage
    cross join lateral jsonb_array_elements_text(repriced_usage._prior_visit_ids) as prior (visit_id)
    union
    -- the visits whose deductible base changed (int_audit_deductible_lines writes only its rows
    -- that changed and logs the visits of those it deleted); every one with an effective
    -- settlement when it re-derived every visit (a new rule library or hospital registry, a full
    -- refresh) since this table was written
    {% if audit_changed is none %}
    select stored.hospital_code, stored.visit_id
    from {{ this }} as stored
    where stored.is_effective_settlement
    {% else %}
    select hospital_code, visit_id
    from ({{ audit_changed }}) as audit_changed
    {% endif %}

),

claims as (

    select
        {% for c in claim_columns %}changed_claims.{{ c }},
        {% endfor -%}
        -- what its earlier versions had (a new settlement, most of a night, has none: no
        -- sub-query run for it); the patients for R22, which re-walks their stays too (a stay
        -- corrected to another patient leaves its former patient's stays)
        {% for list_column, value in [
            ('_prior_insurance_type_codes', 'insurance_type_code'),
            ('_prior_settlement_dates', 'settlement_date::text'),
            ('_prior_patient_keys', 'patient_key'),
        ] -%}
        case when previous_versions.settlement_id is null then '[]'::jsonb else (
            select coalesce(jsonb_agg(distinct prior.value order by prior.value), '[]'::jsonb)
            from (
                select jsonb_array_elements_text(previous_versions.{{ list_column }}) as value
                union all
                select previous_versions.{{ value }}
            ) as prior
            where prior.value is not null
        ) end as {{ list_column }},
        {% endfor -%}
        -- a changed settlement is always written; it replaces its previous version if it had one
        false as _is_stored,
        previous_versions.settlement_id is not null as _replaces_stored,
        {% for c, t in stored_derived %}null::{{ t }} as _stored_{{ c }}{% if not loop.last %},
        {% endif %}{% endfor %}
    from changed_claims
    left join previous_versions
        on changed_claims.hospital_code = previous_versions.hospital_code
       and changed_claims.settlement_id = previous_versions.settlement_id

    union all

    -- the stored settlements of the touched visits, probed per visit through the
    -- (hospital_code, visit_id) index (`offset 0`: never flattened into a join the planner could
    -- turn into a scan of every stored settlement) unless the visit sorts after every stored one
    -- of its hospital (a new visit, most of a night), less the ones changed tonight
    select
        {% for c in claim_columns %}stored.{{ c }},
        {% endfor -%}
        stored._prior_insurance_type_codes,
        stored._prior_settlement_dates,
        stored._prior_patient_keys,
        -- what it holds now: written again only if its re-derived values differ
        true as _is_stored,
        true as _replaces_stored,
        {% for c, t in stored_derived %}stored.{{ c }} as _stored_{{ c }}{% if not loop.last %},
        {% endif %}{% endfor %}
    from touched_visits
    -- the greatest visit_id stored per hospital and numbering: the night's new visits sort after
    -- it, and their probes below are skipped (macro stored_key_bound_join)
    {{ stored_key_bound_join(this, 'touched_visits', 'touched_visits', ['hospital_code'], 'visit_id') }}
    cross join lateral (
        select *
        from {{ this }} as stored
        where stored.hospital_code = touched_visits.hospital_code
          and stored.visit_id = touched_visits.visit_id
          and {{ below_stored_max('touched_visits.visit_id', 'bound', 'visit_id') }}
        offset 0
    ) as stored
    left join changed_claims
        on changed_claims.hospital_code = stored.hospital_code
       and changed_claims.settlement_id = stored.settlement_id
    where changed_claims.settlement_id is null

),

reversed_settlements as materialized (

    -- every settlement reversed after this build, among those re-classified: the reversal
    -- links of the changed settlements, and the stored reversals of the re-classified
    -- settlements that did not change tonight. The stored ones are probed from each
    -- re-classified settlement through the (hospital_code, reversal_of) index, unless it sorts
    -- after every settlement a stored reversal of its hospital names: `offset 0`
    -- keeps the lateral a parameterised index scan per row whatever the planner guesses of
    -- the night's size (with the night estimated at one row it walked every stored settlement
    -- in a merge anti-join on hospital_code alone: quadratic). The stored reversals superseded
    -- tonight are then dropped by an anti-join on both keys. (A correlated exists over a CTE
    -- in the select list was evaluated per row: also quadratic.)
    select distinct hospital_code, settlement_id
    from (
        select hospital_code, reversal_of as settlement_id
        from changed_claims
        where reversal_of is not null

        union all

        select stored_links.hospital_code, stored_links.settlement_id
        from (
            select claims.hospital_code, claims.settlement_id, stored_reversal.settlement_id as reversal_id
            from claims
            {{ stored_key_bound_join(this, 'claims', 'claims', ['hospital_code'], 'reversal_of', night_key='settlement_id') }}
            cross join lateral (
                select stored.settlement_id
                from {{ this }} as stored
                where stored.hospital_code = claims.hospital_code
                  and stored.reversal_of = claims.settlement_id
                  and {{ below_stored_max('claims.settlement_id', 'bound', 'reversal_of') }}
                offset 0
            ) as stored_reversal
        ) as stored_links
        left join changed_claims
            on changed_claims.hospital_code = stored_links.hospital_code
           and changed_claims.settlement_id = stored_links.reversal_id
        where changed_claims.settlement_id is null
    ) as links

),

{% else %}

claims as (

    select
        {% for c in claim_columns %}{{ c }},
        {% endfor -%}
        '[]'::jsonb as _prior_insurance_type_codes,
        '[]'::jsonb as _prior_settlement_dates,
        '[]'::jsonb as _prior_patient_keys,
        false as _replaces_stored
    from {{ ref('stg_claims') }}

),

reversed_settlements as materialized (

    select distinct hospital_code, reversal_of as settlement_id
    from claims
    where reversal_of is not null

),

{% endif %}

classified as (

    select
        claims.*,
        claims.settled_at::date as settlement_date,
        claims.reversal_of is not null as is_reversal,
        reversed_settlements.settlement_id is not null as is_reversed
    from claims
    left join reversed_settlements
        on claims.hospital_code = reversed_settlements.hospital_code
       and claims.settlement_id = reversed_settlements.settlement_id

),

effective_settlements as (

    select distinct on (hospital_code, visit_id)
        hospital_code,
        visit_id,
        settlement_id
    from classified
    where not is_reversal
      and not is_reversed
      and visit_id is not null
      and settled_at is not null
    order by hospital_code, visit_id, settled_at desc, settlement_id desc

),

visit_excess as (

    -- the visit's R3 excess over its usage lines, keyed by its effective settlement (the only row
    -- that uses it), like the two below: joined by visit, a misestimate of the aggregate could
    -- let the planner merge on hospital_code alone (visit_audit_violations, 30 M-line city)
    select
        effective_settlements.hospital_code,
        effective_settlements.settlement_id,
        sum(usage.unreasonable_excess_amount) as visit_excess_amount
    from {{ ref('int_usage_priced_against_payment_standard') }} as usage
    inner join effective_settlements
        on usage.hospital_code = effective_settlements.hospital_code
       and usage.visit_id = effective_settlements.visit_id
    group by 1, 2

),

effective_visit_lines as materialized (

    -- the deductible lines of each effective settlement's visit, read once (one (hospital_code,
    -- visit_id) probe per effective settlement) for its digest and its violations below, with
    -- R14/R19 decided on that settlement
    select
        effective_settlements.hospital_code,
        effective_settlements.settlement_id,
        lines.fee_line_id,
        lines.rule_id,
        lines.rule_type,
        lines.flagged_amount,
        lines.diagnosis_prefixes,
        {{ audit_settlement_condition(
            'lines.rule_type', 'lines.diagnosis_prefixes',
            'classified.medical_category_code', 'classified.principal_diagnosis_code') }} as is_denied
    from effective_settlements
    inner join classified
        on effective_settlements.hospital_code = classified.hospital_code
       and effective_settlements.settlement_id = classified.settlement_id
    inner join {{ ref('int_audit_deductible_lines') }} as lines
        on effective_settlements.hospital_code = lines.hospital_code
       and effective_settlements.visit_id = lines.visit_id

),

audit_visit_digests as (

    select
        hospital_code,
        settlement_id,
        md5(string_agg(
            concat_ws('/', fee_line_id, rule_id, rule_type, flagged_amount, diagnosis_prefixes), ','
            order by fee_line_id, rule_id
        )) as audit_digest
    from effective_visit_lines
    group by 1, 2

),

visit_audit_violations as (

    -- each fee line of an effective settlement's visit denied once: its violation finding of
    -- largest magnitude (R14/R19 only when the effective settlement meets their condition).
    -- Keyed by the effective settlement (one per visit), the only row that uses it: joined by
    -- visit, a misestimate of this aggregate (69 rows for 190k) let the planner merge on
    -- hospital_code alone and filter visit_id, 685 M row pairs (100 s) on a 30 M-line city.
    select hospital_code, settlement_id, sum(violation_amount) as audit_violation_amount
    from (
        select distinct on (hospital_code, fee_line_id)
            hospital_code,
            settlement_id,
            flagged_amount as violation_amount
        from effective_visit_lines
        where is_denied
        order by hospital_code, fee_line_id, abs(flagged_amount) desc, rule_id
    ) as denied
    group by 1, 2

),

deducted as (

    select
        classified.*,
        effective_settlements.settlement_id is not null as is_effective_settlement,
        case
            when effective_settlements.settlement_id is not null
                then coalesce(visit_excess.visit_excess_amount, 0)
        end::numeric(18, 2) as visit_excess_amount,
        case
            when effective_settlements.settlement_id is not null
                then coalesce(visit_audit_violations.audit_violation_amount, 0)
        end::numeric(18, 2) as audit_violation_amount,
        case
            when effective_settlements.settlement_id is not null then audit_visit_digests.audit_digest
        end as _audit_digest
    from classified
    left join effective_settlements
        on classified.hospital_code = effective_settlements.hospital_code
       and classified.settlement_id = effective_settlements.settlement_id
    left join visit_excess
        on classified.hospital_code = visit_excess.hospital_code
       and classified.settlement_id = visit_excess.settlement_id
    left join visit_audit_violations
        on classified.hospital_code = visit_audit_violations.hospital_code
       and classified.settlement_id = visit_audit_violations.settlement_id
    left join audit_visit_digests
        on classified.hospital_code = audit_visit_digests.hospital_code
       and classified.settlement_id = audit_visit_digests.settlement_id

),

settled as (

    select
        deducted.*,
        case
            when not is_effective_settlement then 0
            when total_amount is null or total_amount = 0 then 0
            else greatest(
                least(
                    round((visit_excess_amount + audit_violation_amount) * fund_paid_amount / total_amount, 2),
                    fund_paid_amount
                ),
                0
            )
        end::numeric(18, 2) as deduction_amount
    from deducted

)

select
    -- ids
    hospital_code,
    settlement_id,
    visit_id,
    patient_key,
    reversal_of,
    -- codes
    insurance_type_code,
    medical_category_code,
    principal_diagnosis_code,
    drg_code,
    -- patient attributes
    patient_sex,
    patient_birth_year,
    -- amounts
    total_amount,
    fund_paid_amount,
    other_fund_paid_amount,
    account_paid_amount,
    cash_paid_amount,
    negotiated_drug_amount,
    (fund_paid_amount - coalesce(negotiated_drug_amount, 0))::numeric(18, 2) as declared_amount,
    visit_excess_amount,
    audit_violation_amount,
    deduction_amount,
    -- flags
    is_reversal,
    is_reversed,
    is_effective_settlement,
    -- dates
    admission_date,
    discharge_date,
    settled_at,
    settlement_date,
    -- lineage
    business_date,
    load_id,
    source_row,
    _prior_insurance_type_codes,
    _prior_settlement_dates,
    _prior_patient_keys,
    _audit_digest,
    _replaces_stored,
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from settled
{% if is_incremental() %}
-- a stored settlement re-classified to exactly the values it holds is not written again (nor
-- deleted and re-inserted): the models downstream read the settlements written
-- since their watermark, and would otherwise re-read it, and whole days and quarters around it
where not _is_stored
   or ({% for c, t in stored_derived %}{{ c }}{% if not loop.last %}, {% endif %}{% endfor %})
      is distinct from ({% for c, t in stored_derived %}_stored_{{ c }}{% if not loop.last %}, {% endif %}{% endfor %})
{% endif %}
