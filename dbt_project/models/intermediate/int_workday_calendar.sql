{{ config(indexes=[{"columns": ["calendar_date"], "unique": true}, {"columns": ["workday_seq"]}]) }}

-- R5 working-day calendar, one row per day of every covered year: the bundled seed
-- (chinesecalendar: the holiday-period days and adjusted working days of each year it covers)
-- overlaid with the bureau's workday_overrides (an override wins). A year is covered when the
-- seed or an override has a date in it; a covered year's unlisted days follow the week
-- (Monday-Friday working days).
-- workday_seq counts working days up to and including each date, so "the n-th working day
-- after d" is the working day whose seq is seq(d) + n.
with bundled as (

    select
        calendar_date,
        is_workday,
        day_kind,
        nullif(holiday_name, '') as holiday_name
    from {{ ref('cn_workday_calendar') }}

),

overrides as (

    select
        calendar_date,
        is_workday
    from {{ ref('stg_workday_overrides') }}
    where calendar_date is not null
      and is_workday is not null

),

covered_years as (

    select distinct extract(year from calendar_date)::int as calendar_year from bundled
    union
    select distinct extract(year from calendar_date)::int as calendar_year from overrides

),

all_days as (

    select
        days.day::date as calendar_date,
        covered_years.calendar_year
    from covered_years
    cross join lateral generate_series(
        make_date(covered_years.calendar_year, 1, 1),
        make_date(covered_years.calendar_year, 12, 31),
        interval '1 day'
    ) as days (day)

),

resolved as (

    select
        all_days.calendar_date,
        all_days.calendar_year,
        coalesce(
            overrides.is_workday,
            bundled.is_workday,
            extract(isodow from all_days.calendar_date) < 6
        ) as is_workday,
        case
            when overrides.is_workday is not null then 'override'
            when bundled.is_workday is not null then 'bundled'
            else 'week'
        end as workday_source,
        bundled.day_kind as bundled_day_kind,
        bundled.holiday_name
    from all_days
    left join overrides
        on all_days.calendar_date = overrides.calendar_date
    left join bundled
        on all_days.calendar_date = bundled.calendar_date

)

select
    calendar_date,
    calendar_year,
    is_workday,
    case
        when bundled_day_kind is not null and workday_source = 'bundled' then bundled_day_kind
        when is_workday and extract(isodow from calendar_date) >= 6 then 'adjusted_workday'
        when is_workday then 'workday'
        when extract(isodow from calendar_date) >= 6 then 'weekend'
        else 'holiday'
    end as day_kind,
    holiday_name,
    workday_source,
    (count(*) filter (where is_workday) over (order by calendar_date))::int as workday_seq
from resolved
