{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['patient_key', 'rule_id']},
        {'columns': ['hospital_code', 'visit_id']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ audit_findings_delete_touched(['min_interval_days'], ['patient_key', 'rule_id'], [], from_date=true) }}"
) }}

-- Smart audit R16 周期超频次 (min_interval_days): per patient and rule across all hospitals, the
-- charge days whose net quantity (sum of the matching lines) is > 0, in date order. The first is
-- payable; a later day is payable when it is >= days after the last payable day, otherwise it is
-- not. Every matching line of a non-payable day is flagged whole.
-- The walk is sequential (whether a day is payable depends on the last payable day), so it is a
-- recursive CTE that advances every (patient, rule) one charge day per step.
--
-- Incremental: re-derives the groups (patient_key, rule_id) touched by matches written since this
-- table was (macros/audit.sql), from the earliest date the night touches each at (from_date): the
-- walk starts at the group's first charge day on or after from_date, from the last payable day
-- before it, which is the latest charge day in [read_from, from_date) without a stored finding
-- (read_from = from_date less the rule's days; a last payable day before read_from makes the
-- first day payable, as no last payable day does). Only the matches charged on or after read_from
-- are read, and the days before from_date keep their stored findings. The charge days are found
-- from the columns the matches' partial (patient_key, rule_id, charge_date) index includes
-- (quantity, days), so that a history group's probe reads no heap page; only the lines of the
-- non-payable days are then read whole, one probe per day (docs/scale-out.md §7.24).

-- depends_on: {{ ref('stg_audit_rules') }} (the rules' days, in the pre-hook)
{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_findings_everything(wm, []) %}

with

matches as (

    -- only what the index includes (an index-only scan of a history group)
    select patient_key, rule_id, charge_date, quantity, days
    from ({{ audit_window_group_matches(everything, 'min_interval_days') }}) as group_matches
    where patient_key is not null
      and days is not null

),

net_days as materialized (

    select
        patient_key,
        rule_id,
        charge_date,
        max(days) as days
    from matches
    group by patient_key, rule_id, charge_date
    having sum(quantity) > 0

),

day_states as (

    -- per group, the charge days from read_from, with from_date and whether a day before it is
    -- payable: one without a stored finding (the days before from_date kept theirs), probed per
    -- day through the findings' (patient_key, rule_id) index (`offset 0`: a sub-plan per day,
    -- never an anti-join that could read every stored finding)
    select
        net_days.*,
        {%- if everything %}
        '-infinity'::date as from_date,
        false as is_payable_before
        {%- else %}
        groups.from_date,
        case
            when net_days.charge_date < groups.from_date then not exists (
                select 1
                from {{ this }} as stored
                where stored.patient_key = net_days.patient_key
                  and stored.rule_id = net_days.rule_id
                  and stored.charge_date = net_days.charge_date
                offset 0
            )
            else false
        end as is_payable_before
        {%- endif %}
    from net_days
    {%- if not everything %}
    inner join pg_temp.{{ this.identifier }}__touched as groups
        on net_days.patient_key = groups.patient_key
       and net_days.rule_id = groups.rule_id
    {%- endif %}

),

charge_days as materialized (

    -- the days to walk (from from_date), numbered, each with the group's last payable day before
    -- from_date (a window over the group: no join per group, whatever the planner guesses of the
    -- night's size)
    select
        patient_key,
        rule_id,
        charge_date,
        days,
        last_payable_before,
        row_number() over (partition by patient_key, rule_id order by charge_date) as day_number
    from (
        select
            day_states.*,
            max(charge_date) filter (where is_payable_before)
                over (partition by patient_key, rule_id) as last_payable_before
        from day_states
    ) as states
    where charge_date >= from_date

),

walked as (

    -- a nested recursive query (a top-level "with recursive" would not take dbt's unit-test
    -- fixtures)
    with recursive
        walk (patient_key, rule_id, day_number, charge_date, last_payable_date, is_payable) as (

            select
                patient_key,
                rule_id,
                day_number,
                charge_date,
                case
                    when last_payable_before is null or charge_date >= last_payable_before + days then charge_date
                    else last_payable_before
                end,
                last_payable_before is null or charge_date >= last_payable_before + days
            from charge_days
            where day_number = 1

            union all

            select
                next_day.patient_key,
                next_day.rule_id,
                next_day.day_number,
                next_day.charge_date,
                case
                    when next_day.charge_date >= walk.last_payable_date + next_day.days then next_day.charge_date
                    else walk.last_payable_date
                end,
                next_day.charge_date >= walk.last_payable_date + next_day.days
            from walk
            inner join charge_days as next_day
                on next_day.patient_key = walk.patient_key
               and next_day.rule_id = walk.rule_id
               and next_day.day_number = walk.day_number + 1

        )

    select * from walk

),

not_payable as (

    select patient_key, rule_id, charge_date
    from walked
    where not is_payable

)

select
    {{ audit_fee_line_finding_columns('lines') }},
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from not_payable
cross join lateral (
    -- the day's lines, whole, through the partial (patient_key, rule_id, charge_date) index
    {{ audit_matches_probe('not_payable', ['patient_key', 'rule_id', 'charge_date'],
                           ["probed.rule_type = 'min_interval_days'", 'probed.days is not null']) }}
) as lines
