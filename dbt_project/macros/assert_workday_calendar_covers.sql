{#- Post-hook of int_vbp_purchase_lines_due: fail the build, naming the years, when a due date or
    an overdue count needs a year that neither the bundled calendar nor the overrides cover
    (docs/extract-contract.md: never fall back to weekends). Runs inside the model's transaction, so the
    model is rolled back and everything downstream is skipped. -#}
{% macro assert_workday_calendar_covers() -%}
do $$
declare
    missing text;
begin
    select string_agg(distinct calendar_missing_year::text, ', ' order by calendar_missing_year::text)
      into missing
      from {{ this }}
     where calendar_missing_year is not null;
    if missing is not null then
        raise exception 'working-day calendar does not cover year(s) %', missing
            using detail = 'R5 due dates need them; the bundled chinesecalendar seed (cn_workday_calendar) lacks them and raw.ref_workday_overrides has no date in them',
                  hint = 'deliver reference/workday_overrides.csv with the statutory holidays and adjusted working days of those years';
    end if;
end
$$
{%- endmacro %}
