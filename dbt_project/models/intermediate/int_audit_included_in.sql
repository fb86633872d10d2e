-- Smart audit R18 重复收费 (included_in): item_prefix is the included item B, main_item_prefix the
-- main item A. days = 0 (单日): on a visit and charge date where A's matching lines net > 0, every
-- B line of that visit and date is flagged whole; days empty (单次就诊): where A nets > 0 over the
-- visit, every B line of the visit. A's lines match like B's (audited lines, prefix, charge date in
-- the rule's effective dates). A days value other than 0 or empty is read as 0 (per day).

with

b_lines as (

    select *
    from {{ ref('int_audit_rule_matches') }}
    where rule_type = 'included_in'
      and main_item_prefix is not null
      and visit_id is not null

),

visit_rules as (

    select distinct
        hospital_code, visit_id, rule_id, main_item_prefix, days, effective_from, effective_to
    from b_lines

),

a_net as (

    select
        visit_rules.hospital_code,
        visit_rules.visit_id,
        visit_rules.rule_id,
        case when visit_rules.days is not null then a_lines.charge_date end as charge_date
    from visit_rules
    inner join {{ ref('stg_fee_lines') }} as a_lines
        on a_lines.hospital_code = visit_rules.hospital_code
       and a_lines.visit_id = visit_rules.visit_id
       and left(a_lines.item_code, length(visit_rules.main_item_prefix)) = visit_rules.main_item_prefix
    where a_lines.item_type is distinct from '31'
      and a_lines.charge_date >= visit_rules.effective_from
      and a_lines.charge_date <= visit_rules.effective_to
    group by 1, 2, 3, 4
    having sum(a_lines.quantity) > 0

)

select
    {{ audit_fee_line_finding_columns('b_lines') }}
from b_lines
where exists (
    select 1
    from a_net
    where a_net.hospital_code = b_lines.hospital_code
      and a_net.visit_id = b_lines.visit_id
      and a_net.rule_id = b_lines.rule_id
      and (a_net.charge_date is null or a_net.charge_date = b_lines.charge_date)
)
