{{ config(post_hook=[
    "create statistics on (length(match_prefix)) from {{ this }}",
    "analyze {{ this }}",
]) }}

-- Smart audit: the effective rule library (stg_audit_rules) as the prefixes lines are matched on,
-- one row per rule and prefix: item_prefix for every rule with one, and for an included_in rule
-- (R18) also its main_item_prefix (is_main_item). A small table, analyzed after it is written, so
-- that the planner sizes the library right and hashes it against the lines
-- (int_audit_rule_matches); an estimate of a handful of rules would make it loop over them.
-- The statistics on length(match_prefix) (an unnamed statistics object, dropped with the table)
-- give the planner the number of distinct prefix lengths (4 in the national library): without
-- them it assumed 200, i.e. 200 rows per line to match instead of 4.

with rules as (

    select *
    from {{ ref('stg_audit_rules') }}
    where rule_type <> 'readmission'

)

select rules.*, rules.item_prefix as match_prefix, false as is_main_item
from rules
where rules.item_prefix is not null

union all

select rules.*, rules.main_item_prefix as match_prefix, true as is_main_item
from rules
where rules.main_item_prefix is not null
  and rules.rule_type = 'included_in'
