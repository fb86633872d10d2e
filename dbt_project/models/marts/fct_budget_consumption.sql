{{ config(
    materialized='incremental',
    incremental_strategy='delete_insert_probed',
    unique_key=['hospital_code', 'insurance_type', 'as_of_date'],
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'insurance_type', 'as_of_date'], 'unique': true},
        {'columns': ['as_of_date']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{% if is_incremental() %}
        delete from {{ this }} as stored
        where not exists (
            select 1 from {{ ref('stg_fund_budgets') }} as budgets
            where budgets.hospital_code = stored.hospital_code
              and budgets.insurance_type_code = stored.insurance_type
              and budgets.budget_year = extract(year from stored.as_of_date)::int
        )
    {% endif %}",
    post_hook="{{ last_batch_statistics() }}"
) }}

-- R8 budget consumption (预算执行进度) per hospital and insurance type with a budget, for every
-- day of the budget year up to the as-of date. consumed = declared (as in R7) settled from
-- 1 January to that day; consumption_rate = consumed / B; time_elapsed = day of year / days in
-- year; pace = consumption_rate / time_elapsed (from the unrounded rate and time);
-- projected_year_end = consumed / time_elapsed. alert_level: red when pace > 1.10, amber when
-- pace > 1.00, else green (on the unrounded pace). Rates half-up to 4 decimals, money to 0.01.
--
-- Incremental: per budget, the days from the first day whose cumulative total may have changed
-- (a re-totalled settlement day upstream, a day after the last one this table holds, or every
-- day when the budget file changed); this schema may lag a night behind.

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- if is_incremental() and execute %}
    {%- set budgets_changed = reference_changed_since(wm, [ref('stg_fund_budgets')]) %}
    {%- set last_day = run_query(
        "select coalesce(max(as_of_date), date '0001-01-01')::text from " ~ this).rows[0][0] %}
{%- endif %}

with budgets as (

    select
        hospital_code,
        insurance_type_code,
        budget_year,
        annual_budget_amount
    from {{ ref('stg_fund_budgets') }}
    where make_date(budget_year, 1, 1) <= {{ as_of_date() }}

),

{% if is_incremental() %}

changed_days as (

    select
        hospital_code,
        insurance_type_code,
        extract(year from settlement_date)::int as budget_year,
        min(settlement_date) as first_changed_date
    from {{ ref('int_settlement_daily_totals') }}
    where _batch_at > '{{ wm.batch_at }}'::timestamptz
    group by 1, 2, 3

),

refresh as (

    select
        budgets.*,
        least(
            {% if budgets_changed %}
            make_date(budgets.budget_year, 1, 1),
            {% else %}
            greatest(make_date(budgets.budget_year, 1, 1), date '{{ last_day }}' + 1),
            {% endif %}
            changed_days.first_changed_date
        ) as refresh_from_date
    from budgets
    left join changed_days
        on budgets.hospital_code = changed_days.hospital_code
       and budgets.insurance_type_code = changed_days.insurance_type_code
       and budgets.budget_year = changed_days.budget_year

),

{% else %}

refresh as (

    select
        budgets.*,
        make_date(budgets.budget_year, 1, 1) as refresh_from_date
    from budgets

),

{% endif %}

days as (

    select
        refresh.hospital_code,
        refresh.insurance_type_code,
        refresh.budget_year,
        refresh.annual_budget_amount,
        refresh.refresh_from_date,
        calendar.day::date as as_of_date
    from refresh
    cross join lateral generate_series(
        make_date(refresh.budget_year, 1, 1),
        least(make_date(refresh.budget_year, 12, 31), {{ as_of_date() }}),
        interval '1 day'
    ) as calendar (day)
    where refresh.refresh_from_date <= least(make_date(refresh.budget_year, 12, 31), {{ as_of_date() }})

),

cumulative as (

    select
        days.*,
        sum(coalesce(daily.declared_amount, 0)) over (
            partition by days.hospital_code, days.insurance_type_code, days.budget_year
            order by days.as_of_date
            rows between unbounded preceding and current row
        ) as consumed_amount,
        extract(doy from days.as_of_date)::int as day_of_year,
        (make_date(days.budget_year, 12, 31) - make_date(days.budget_year, 1, 1) + 1) as days_in_year
    from days
    left join {{ ref('int_settlement_daily_totals') }} as daily
        on days.hospital_code = daily.hospital_code
       and days.insurance_type_code = daily.insurance_type_code
       and days.as_of_date = daily.settlement_date

),

measured as (

    select
        *,
        case
            when annual_budget_amount > 0
                then consumed_amount * days_in_year / (annual_budget_amount * day_of_year)
        end as exact_pace
    from cumulative
    where as_of_date >= refresh_from_date

)

select
    -- ids
    hospital_code,
    insurance_type_code as insurance_type,
    as_of_date,
    budget_year,
    -- amounts
    annual_budget_amount::numeric(18, 2) as annual_budget_amount,
    consumed_amount::numeric(18, 2) as consumed_amount,
    round(consumed_amount * days_in_year / day_of_year, 2)::numeric(18, 2) as projected_year_end_amount,
    -- rates
    case
        when annual_budget_amount > 0 then round(consumed_amount / annual_budget_amount, 4)
    end::numeric(9, 4) as consumption_rate,
    round(day_of_year::numeric / days_in_year, 4)::numeric(9, 4) as time_elapsed,
    round(exact_pace, 4)::numeric(9, 4) as pace,
    case
        when exact_pace is null then case when consumed_amount > 0 then 'red' else 'green' end
        when exact_pace > 1.10 then 'red'
        when exact_pace > 1.00 then 'amber'
        else 'green'
    end as alert_level,
    day_of_year,
    days_in_year,
    -- lineage
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from measured
