{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'fee_line_id', 'rule_id', 'is_main_item'], 'unique': true},
        {'columns': ['hospital_code', 'visit_id']},
        {'columns': ['_batch_at']},
    ],
    pre_hook=[
        "{{ audit_matches_take_prior() }}",
        "set local enable_mergejoin = off",
    ],
    post_hook=[
        "{{ partial_index(['patient_key', 'rule_id', 'charge_date'], 'rule_type in (' ~ audit_window_rule_types() ~ ')', include=['rule_type', 'severity', 'hospital_code', 'visit_id', 'quantity', 'days'], replaces=['patient_key', 'rule_id']) }}",
        "{{ partial_index(['hospital_code', 'visit_id', 'fee_line_id'], audit_decided_by_settlement()) }}",
        "{{ partial_index(['hospital_code', 'visit_id', 'rule_id', 'charge_date'], audit_visit_partial_predicate(), include=['quantity', 'days'], replaces=['hospital_code', 'visit_id', 'rule_id']) }}",
        "{{ partial_index(['hospital_code', 'charge_date'], \"rule_type = 'positive_rate'\", include=['exam_class', 'fee_line_id', 'quantity', 'exam_result', 'threshold'], replaces=['rule_type', 'hospital_code', 'charge_date']) }}",
        "{{ partial_index(['_batch_at', 'hospital_code', 'fee_line_id'], audit_prior_keys_present()) }}",
        "{{ analyze_night_rows() }}",
    ],
) }}

-- Smart audit, common ground (R11-R21): every audited fee line paired with every rule it matches.
-- Audited lines: the latest versions with item_type <> '31' (consumables are audited from usage by
-- R1, R3, R9). A line matches a rule when its item_code starts with item_prefix and its charge
-- date lies in [effective_from, effective_to] (an empty bound is open). For an included_in rule
-- (R18) a line whose item_code starts with main_item_prefix is matched too, as the main item A
-- (is_main_item), so that R18 never reads the lines themselves.
--
-- The library (15k rules) against tens of millions of lines is an equi-join, never a LIKE nested
-- loop: the few distinct prefix lengths L present in the library are crossed with the lines and
-- (left(item_code, L), L) is hashed against (prefix, length(prefix)) of int_audit_rules (a small
-- analyzed table, so that the planner hashes it rather than looping over a mis-estimated view).
-- Readmission (R22) rules have no item_prefix and are read by int_audit_readmission.
-- Merge joins are off for this model's transaction (a pre-hook, `set local`): the planner priced
-- the hash join of the library (16k rows) against lines x prefix lengths above a merge join that
-- sorts lines x lengths, i.e. 4 M wide rows for a night of 1 M lines, on disk (791 MB): 15.3 s
-- against 1.8 s for the hash join (EXPLAIN ANALYZE, docs/scale-out.md §7.7), and the sort's disk
-- I/O made the night's time swing by 10 s from run to run.
--
-- Incremental: the lines delivered since this table was written (new, late, re-sent or refund
-- lines) are re-matched; every line when the rule library changed (a new load of either rule
-- file). The pre-hook (macro audit_matches_take_prior) deletes the stored rows of the re-matched
-- lines that have another version in raw (a line whose only version is tonight's has none) and
-- returns their keys; the model appends the lines' new rows. Each row carries _prior_keys, the
-- (rule, visit, patient, charge date) of the line's earlier matches, so that the window rules
-- downstream also re-derive the groups a corrected line left; a line that no longer matches any
-- rule leaves one row with rule_id null (a tombstone carrying its _prior_keys).
-- The (patient_key, rule_id, charge_date) index serves the window rules (R15, R16, R20: patient x
-- rule across hospitals, from a date on) and is partial to their rule types (macros/indexes.sql):
-- keyed by patient, a full index took every night's match at a random leaf page, for 3.6 % of the
-- matches (10 M-line city) that are ever read through it. The charge date in the key bounds each
-- probe to the group's days from its date on (R15: the day itself); keyed (patient_key, rule_id)
-- as before 2026-12-05, each probe read every match of the group and dropped the earlier ones,
-- twice the pages (docs/scale-out.md §7.19). It includes rule_type, severity, hospital_code,
-- visit_id, quantity and days: all that R16 and R20 take to find a group's charge days (R16) or
-- (date, hospital) pairs (R20), and that the deductible base takes to find the visits of a window
-- group (macro audit_touched_visits), so that a history group's probe reads no heap page; R16 and
-- R20 read whole only the lines of the days they flag (docs/scale-out.md §7.24).
-- The (hospital_code, visit_id, fee_line_id) index is partial to the matches of the rules decided
-- on the settlement (R14 inpatient_only, R19 indication: ~1.4 % of the matches), which
-- int_audit_claim_rules and (their violations) int_audit_deductible_lines read for every touched
-- visit: through the full (hospital_code, visit_id) index each probe read the visit's ~19 matches
-- to keep none (16.8 s, 3.1 M pages for 220k visits on a 30 M-line city, docs/scale-out.md §7.4;
-- R14/R19 96 s cold, §7.5).
-- The (hospital_code, visit_id, rule_id, charge_date) index is partial to R17's course_days
-- matches (~7 %; macro audit_visit_partial_predicate), which int_audit_course_days probes for
-- every touched visit: through the full index each probe fetched all the visit's matches. It
-- includes quantity and days, the rest of what R17 numbers a course with, so that a history
-- visit's probe reads no heap page (the night's own rows, not yet all-visible, still do); the
-- rows of the few lines past their course are fetched by date (docs/scale-out.md §7.23).
-- The (hospital_code, charge_date) index is partial to R21's positive_rate matches (~3 %), which
-- int_exam_results reads by hospital x month: a full index took every night's match. It includes
-- the other columns R21 reads (exam_class, fee_line_id, quantity, exam_result, threshold), so the
-- read is an index-only scan: a month's exam matches lie on as many heap pages as they have rows,
-- which a night on a 30 M-line history read cold (docs/scale-out.md §7.15).
-- The (_batch_at, hospital_code, fee_line_id) index is partial to the rows that name prior keys
-- or have no visit (macro audit_prior_keys_present): the re-matched lines of a re-send, a few of a
-- night's rows. The readers of the night's prior keys (the touched groups and visits of every
-- finding model, R21's months, the findings mart's lines without a visit) read those through it
-- instead of expanding the '[]' of every one of the night's matches (docs/scale-out.md §7.25).
-- Analyzed after every build: the models downstream select the night's matches by _batch_at,
-- which stale statistics estimate at one row (then a nested loop rescans a subquery per line).

-- depends_on: {{ ref('stg_audit_rules') }}
-- depends_on: {{ source('raw', 'fee_detail') }}
{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{#- every line on a full build and when the rule library changed; else the night's (pre-hook) -#}
{%- set every_line = not is_incremental() or reference_changed_since(wm, [ref('stg_audit_rules')]) %}

with

changed_lines as (

    {% if not every_line -%}
    -- the night's rows of stg_fee_lines, written by the pre-hook
    select *
    from pg_temp.{{ this.identifier }}__lines
    {%- else -%}
    select *
    from {{ ref('stg_fee_lines') }}
    {%- endif %}

),

lines as (

    select *
    from changed_lines
    where item_type is distinct from '31'
      and item_code is not null

),

rules as (

    select *
    from {{ ref('int_audit_rules') }}

),

prefix_lengths as (

    -- from the table, not the CTE, so that the planner reads its statistics on length(match_prefix)
    select distinct length(match_prefix) as prefix_length
    from {{ ref('int_audit_rules') }}

),

matched as (

    select
        -- line
        lines.hospital_code,
        lines.fee_line_id,
        lines.visit_id,
        lines.patient_key,
        lines.patient_sex,
        lines.patient_age_days,
        lines.item_type,
        lines.item_code,
        lines.item_name,
        lines.charged_at,
        lines.charge_date,
        lines.quantity,
        lines.unit_price,
        lines.amount,
        lines.exam_result,
        -- rule
        rules.rule_id,
        rules.rule_type,
        rules.is_main_item,
        rules.severity,
        rules.item_prefix,
        rules.allowed_sex,
        rules.min_age_days,
        rules.max_age_days,
        rules.min_hospital_level,
        rules.max_quantity,
        rules.days,
        rules.main_item_prefix,
        rules.diagnosis_prefixes,
        rules.exam_class,
        rules.threshold,
        rules.effective_from,
        rules.effective_to,
        -- lineage
        lines.business_date,
        lines.load_id
    from lines
    cross join prefix_lengths
    inner join rules
        on rules.match_prefix = left(lines.item_code, prefix_lengths.prefix_length)
       and length(rules.match_prefix) = prefix_lengths.prefix_length
    where lines.charge_date >= coalesce(rules.effective_from, date '0001-01-01')
      and lines.charge_date <= coalesce(rules.effective_to, date '9999-12-31')

),

{% if is_incremental() %}

prior as (

    -- the keys of the deleted matches of the re-matched lines, and the keys those carried
    -- (written by the pre-hook)
    select hospital_code, fee_line_id, prior_keys
    from pg_temp.{{ this.identifier }}__prior

),

{% else %}

prior as (

    select null::text as hospital_code, null::text as fee_line_id, null::jsonb as prior_keys
    where false

),

{% endif %}

tombstones as (

    select
        prior.hospital_code,
        prior.fee_line_id,
        changed_lines.visit_id,
        changed_lines.patient_key,
        changed_lines.charge_date,
        changed_lines.business_date,
        changed_lines.load_id
    from prior
    left join changed_lines
        on prior.hospital_code = changed_lines.hospital_code
       and prior.fee_line_id = changed_lines.fee_line_id
    where not exists (
        select 1 from matched
        where matched.hospital_code = prior.hospital_code
          and matched.fee_line_id = prior.fee_line_id
    )

)

select
    matched.*,
    coalesce(prior.prior_keys, '[]'::jsonb) as _prior_keys,
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from matched
left join prior
    on matched.hospital_code = prior.hospital_code
   and matched.fee_line_id = prior.fee_line_id

union all

select
    tombstones.hospital_code,
    tombstones.fee_line_id,
    tombstones.visit_id,
    tombstones.patient_key,
    null, null, null, null, null, null,
    tombstones.charge_date,
    null, null, null, null,
    null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
    tombstones.business_date,
    tombstones.load_id,
    prior.prior_keys,
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from tombstones
inner join prior
    on tombstones.hospital_code = prior.hospital_code
   and tombstones.fee_line_id = prior.fee_line_id
