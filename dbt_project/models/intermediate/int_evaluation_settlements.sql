{{ config(
    materialized='incremental',
    incremental_strategy='replace_stored',
    unique_key=['hospital_code', 'settlement_id'],
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'settlement_id'], 'unique': true},
        {'columns': ['_batch_at']},
        {'columns': ['quarter_start', 'hospital_patient']},
    ]
) }}

-- R10 考核指标, its contributions: one row per settlement with what it adds to its hospital's
-- quarter in int_evaluation_quarter_totals (counted when neither a reversal nor reversed and
-- settled; quarter_start is null for a settlement that does not count).
--
-- Incremental: the settlements re-classified upstream since this table was written
-- (int_claims_with_deductions._batch_at). Each row also keeps the contribution that
-- int_evaluation_quarter_totals last counted for it (_counted_*): the quarter totals are kept by
-- difference (current minus counted), so that a night costs the settlements it touches, not the
-- quarter. When a row is rewritten, its counted contribution becomes its previous contribution if
-- int_evaluation_quarter_totals was built after that previous row was written (its watermark,
-- macros/incremental.sql), and stays what it was otherwise (a build of the totals that did not
-- happen, e.g. skipped after a failed test). A new settlement has counted nothing; after a full
-- build of this model the counted contributions are unknown (_counted_known false) and the
-- quarter totals are aggregated again from scratch. Written by the replace_stored strategy
-- (macros/incremental.sql): only a row with a stored version (_replaces_stored, from the probe
-- below) deletes it first; a new settlement is inserted without a probe. The quarter's patients
-- are counted through the (quarter_start, hospital_patient) index, read alone.
--
-- hospital_patient is the settlement's patient at its hospital, md5(hospital_code || '/' ||
-- patient_key) as a uuid: 16 bytes where the 64-character patient_key took 65, so the table and
-- its patient index are about half as large. That index is keyed by patient, so a night's
-- settlements land on random leaves of its quarter: the night writes (and, after a checkpoint,
-- logs in full) about one leaf per settlement, and fewer leaves is less of both (the quarter's
-- last night of a 30 M-claim year: 307 MB of WAL for the night's insert with patient_key, 164 MB
-- with hospital_patient; docs/scale-out.md §6). The hash is the patient's identity within
-- R10, as patient_key (an HMAC) is everywhere: two patients of one hospital would need equal 128-bit
-- hashes to be counted once. An earlier version kept patient_key here, indexed by (hospital_code,
-- quarter_start, patient_key); a table it wrote has no hospital_patient and is rebuilt once.

{%- set wm = incremental_watermark() %}
{%- do require_columns_or_full_refresh(['_replaces_stored', 'hospital_patient']) %}
{%- if is_incremental() %}
    {%- set totals = recorded_incremental_watermark(
        api.Relation.create(database=this.database, schema=this.schema, identifier='int_evaluation_quarter_totals')) %}
{%- endif %}

with

current_contributions as (

    select
        claims.hospital_code,
        claims.settlement_id,
        case
            when not claims.is_reversal and not claims.is_reversed and claims.settlement_date is not null
                then date_trunc('quarter', claims.settlement_date)::date
        end as quarter_start,
        md5(claims.hospital_code || '/' || claims.patient_key)::uuid as hospital_patient,
        coalesce(categories.is_inpatient, false) as is_inpatient,
        claims.total_amount,
        (coalesce(claims.account_paid_amount, 0) + coalesce(claims.cash_paid_amount, 0))::numeric(18, 2)
            as personal_paid_amount
    from {{ ref('int_claims_with_deductions') }} as claims
    left join {{ ref('code_medical_categories') }} as categories
        on claims.medical_category_code = categories.medical_category_code
    {% if is_incremental() %}
    where claims._batch_at > '{{ wm.batch_at }}'::timestamptz
    {% endif %}

)

select
    -- ids
    current_contributions.hospital_code,
    current_contributions.settlement_id,
    current_contributions.hospital_patient,
    -- dates
    current_contributions.quarter_start,
    -- flags
    current_contributions.is_inpatient,
    -- amounts
    current_contributions.total_amount,
    current_contributions.personal_paid_amount,
    -- the contribution int_evaluation_quarter_totals last counted
    {% if is_incremental() %}
    {%- set counted = "stored._batch_at <= '" ~ totals[2] ~ "'::timestamptz" if totals is not none else "false" %}
    case when stored.settlement_id is null or {{ counted }} then true else stored._counted_known end
        as _counted_known,
    {% for c in ['quarter_start', 'hospital_patient', 'is_inpatient', 'total_amount', 'personal_paid_amount'] -%}
    case
        when stored.settlement_id is null then null
        when {{ counted }} then stored.{{ c }}
        else stored._counted_{{ c }}
    end as _counted_{{ c }},
    {% endfor %}
    stored.settlement_id is not null as _replaces_stored,
    {% else %}
    false as _counted_known,
    {% for c in ['quarter_start', 'hospital_patient', 'is_inpatient', 'total_amount', 'personal_paid_amount'] -%}
    case when false then current_contributions.{{ c }} end as _counted_{{ c }},
    {% endfor %}
    false as _replaces_stored,
    {% endif %}
    -- lineage
    {{ as_of_date() }} as _through_as_of,
    now() as _batch_at
from current_contributions
{% if is_incremental() %}
-- the stored row of each settlement, probed through the unique index (`offset 0`: never turned
-- into a scan of the whole table, whatever the planner guesses of the night's size), unless the
-- settlement sorts after every stored one of its hospital (a new settlement, most of a night;
-- macro stored_key_bound_join)
{{ stored_key_bound_join(this, 'current_contributions', 'current_contributions', ['hospital_code'], 'settlement_id') }}
left join lateral (
    select *
    from {{ this }} as stored
    where stored.hospital_code = current_contributions.hospital_code
      and stored.settlement_id = current_contributions.settlement_id
      and {{ below_stored_max('current_contributions.settlement_id', 'bound', 'settlement_id') }}
    offset 0
) as stored on true
{% endif %}
